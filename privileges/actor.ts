export type ActorRole = 'super-admin' | 'custodian' | 'entity-admin';

/** Who asks for a change: a portal user, or the operator at the command line. */
export interface Actor {
  name: string;
  role: ActorRole;
  entity: string | null;
}
