import assert from 'node:assert/strict';
import { generate } from 'otplib';
import type { ApiHub } from './api-hub.ts';
import { createUser } from '../../server/services/user-service.ts';

export interface PortalResponse {
  status: number;
  location: string | null;
  text: string;
}

export interface PortalUser {
  username: string;
  password: string;
  secret: string;
}

/**
 * A browser without a browser: fetch with a cookie jar, redirects left to the test, and the
 * CSRF token of the last page sent with every form unless the test says otherwise.
 */
export class PortalClient {
  readonly #baseUrl: string;
  readonly #cookies = new Map<string, string>();
  csrfToken: string | null = null;

  constructor(baseUrl: string) {
    this.#baseUrl = baseUrl;
  }

  get(path: string): Promise<PortalResponse> {
    return this.#send('GET', path);
  }

  post(
    path: string,
    form: Record<string, string | string[]>,
    options: { csrf?: boolean } = {},
  ): Promise<PortalResponse> {
    const body = new URLSearchParams();
    for (const [name, value] of Object.entries(form)) for (const v of [value].flat()) body.append(name, v);
    if (options.csrf !== false && this.csrfToken !== null) body.append('_csrf', this.csrfToken);
    return this.#send('POST', path, body);
  }

  cookie(name: string): string | undefined {
    return this.#cookies.get(name);
  }

  /** The Cookie header this client sends, for a request made another way. */
  cookieHeader(): string {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async #send(method: string, path: string, body?: URLSearchParams): Promise<PortalResponse> {
    const headers: Record<string, string> = {};
    if (this.#cookies.size > 0) headers.cookie = this.cookieHeader();
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(`${this.#baseUrl}${path}`, { method, headers, body, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
    const text = await res.text();
    const token = /name="_csrf" value="([^"]+)"/.exec(text);
    if (token !== null) this.csrfToken = token[1]!;
    return { status: res.status, location: res.headers.get('location'), text };
  }
}

/** A portal user of the entity, with the secret of its one-time codes. */
export async function createPortalUser(
  hub: Pick<ApiHub, 'ctx'>,
  username: string,
  entity: string,
  role: string,
): Promise<PortalUser> {
  const created = await createUser(hub.ctx, { username, entity, role }, 'portal-test');
  const secret = new URL(created.otpauth_uri).searchParams.get('secret');
  assert.ok(secret !== null);
  return { username, password: created.password, secret };
}

const TOTP_STEP_MS = 30_000;

/** The code an authenticator app would show now, by the hub's clock. */
export function generateCode(hub: ApiHub, user: PortalUser): Promise<string> {
  return generate({ secret: user.secret, epoch: Math.floor(hub.clock.now().getTime() / 1000) });
}

/** Password, then the code `currentCode` gives once the code page is open; returns the client signed in at `baseUrl`. */
export async function signInAt(
  baseUrl: string,
  user: PortalUser,
  currentCode: () => Promise<string>,
): Promise<PortalClient> {
  const client = new PortalClient(baseUrl);
  await client.get('/login');
  const afterPassword = await client.post('/login', { username: user.username, password: user.password });
  assert.equal(afterPassword.location, '/login/code', afterPassword.text);
  await client.get('/login/code');
  const afterCode = await client.post('/login/code', { code: await currentCode() });
  assert.equal(afterCode.location, '/', afterCode.text);
  return client;
}

/** Password, then the code by the hub's clock; returns the client signed in. */
export function signIn(hub: ApiHub, user: PortalUser): Promise<PortalClient> {
  return signInAt(hub.baseUrl, user, () => {
    // A code is accepted once: like a person signing in again, wait for the authenticator's next code.
    hub.clock.advance(TOTP_STEP_MS);
    return generateCode(hub, user);
  });
}
