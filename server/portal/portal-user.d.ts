import type { UserRecord } from '../services/user-service.ts';

declare global {
  namespace Express {
    // passport's req.user: the portal user, read from the warehouse on every request.
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type
    interface User extends UserRecord {}
  }
}
