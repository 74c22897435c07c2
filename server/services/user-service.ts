import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { generateSecret, generateURI, verify } from 'otplib';
import { recordAudit } from '../../warehouse/audit/record-audit.ts';
import { isoNow } from '../../warehouse/core/clock.ts';
import { conflict, HubError, invalidRequest } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { assertEntityExists } from './client-service.ts';
import { hashSecret, verifySecret } from './password-hash.ts';

export const USER_ROLES = ['super-admin', 'custodian', 'entity-admin'] as const;
export type UserRole = (typeof USER_ROLES)[number];

export interface UserInput {
  username: string;
  entity: string;
  role: string;
}

export interface NewUser {
  username: string;
  password: string;
  otpauth_uri: string;
}

export interface UserRecord {
  username: string;
  entity: string;
  role: UserRole;
  status: 'active' | 'disabled';
  created_at: string;
}

interface UserRow extends UserRecord {
  password_hash: string;
  totp_secret: string;
  failed_logins: number;
  locked_until: string | null;
  totp_enrolled_at?: string | null;
}

export const TOTP_ISSUER = 'Registry Hub';
export const MAX_FAILED_LOGINS = 5;
export const LOCKOUT_MS = 15 * 60_000;
const USERNAME_PATTERN = /^[a-z][a-z0-9._-]{2,63}$/;
const PASSWORD_BYTES = 18;
// One 30-second step either side, for phone clocks that drift.
const TOTP_TOLERANCE_SECONDS = 30;

const invalidLogin = (message = 'invalid username, password or one-time code') =>
  new HubError('invalid_login', 401, message);

const isUserRole = (role: string): role is UserRole => (USER_ROLES as readonly string[]).includes(role);

export async function createUser(ctx: AppContext, input: UserInput, actor: string): Promise<NewUser> {
  const username = input.username.trim();
  if (!USERNAME_PATTERN.test(username)) {
    throw invalidRequest(`username: must match ${USERNAME_PATTERN.source} (lower-case, 3 to 64 characters)`, {
      field: 'username',
    });
  }
  const role = input.role;
  if (!isUserRole(role))
    throw invalidRequest(`role: must be one of ${USER_ROLES.join(', ')}`, { field: 'role' });
  const password = randomBytes(PASSWORD_BYTES).toString('base64url');
  const passwordHash = await hashSecret(password);
  const totpSecret = generateSecret();
  await ctx.knex.transaction(async (trx) => {
    const entity = await assertEntityExists(trx, input.entity);
    if ((await trx('hub_users').where({ username }).first('username')) !== undefined) {
      throw conflict('user_exists', `user ${JSON.stringify(username)} already exists`);
    }
    await trx('hub_users').insert({
      username,
      entity,
      role,
      password_hash: passwordHash,
      totp_secret: totpSecret,
      status: 'active',
      failed_logins: 0,
      locked_until: null,
      created_at: isoNow(ctx.clock),
    });
    await recordAudit(trx, ctx.clock, {
      actor,
      entity,
      action: 'user.create',
      target: username,
      details: { role },
    });
  });
  return {
    username,
    password,
    otpauth_uri: generateURI({ issuer: TOTP_ISSUER, label: username, secret: totpSecret }),
  };
}

export async function fetchUser(ctx: AppContext, username: string): Promise<UserRecord | null> {
  const row = await ctx.knex('hub_users').where({ username }).first<UserRow | undefined>();
  return row === undefined ? null : mapUserRow(row);
}

/**
 * Password and one-time code together, or 401 `invalid_login`. Five failures in a row lock the
 * account for fifteen minutes; while locked, even the right password is refused, so guessing
 * gains nothing. Every attempt is audited, never with the password or the code.
 */
export async function verifyUserLogin(
  ctx: AppContext,
  username: string,
  password: string,
  code: string,
): Promise<UserRecord> {
  const row = await ctx.knex('hub_users').where({ username }).first<UserRow | undefined>();
  const passwordMatches = await verifySecret(password, row?.password_hash);
  if (row === undefined) {
    await recordLogin(
      ctx.knex,
      ctx,
      { username: username.slice(0, 100), entity: null },
      { outcome: 'failure', reason: 'unknown_user' },
    );
    throw invalidLogin();
  }
  const now = ctx.clock.now();
  if (row.locked_until !== null && new Date(row.locked_until) > now) {
    await recordLogin(ctx.knex, ctx, row, { outcome: 'failure', reason: 'locked' });
    throw invalidLogin(`too many failed attempts: the account is locked until ${row.locked_until}`);
  }
  const failure = await findLoginFailure(row, passwordMatches, code, now);
  if (failure !== null) {
    await countFailure(ctx, row, failure);
    throw invalidLogin();
  }
  await ctx.knex.transaction(async (trx) => {
    await trx('hub_users').where({ username }).update({ failed_logins: 0, locked_until: null });
    await recordLogin(trx, ctx, row, { outcome: 'success' });
  });
  return mapUserRow(row);
}

async function findLoginFailure(
  row: UserRow,
  passwordMatches: boolean,
  code: string,
  now: Date,
): Promise<string | null> {
  if (row.status !== 'active') return 'disabled';
  if (!passwordMatches) return 'bad_password';
  if (!(await isCodeValid(row.totp_secret, code, now))) return 'bad_code';
  return null;
}

// The count is incremented in the database, so concurrent wrong guesses all count.
async function countFailure(ctx: AppContext, row: UserRow, reason: string): Promise<void> {
  await ctx.knex.transaction(async (trx) => {
    await trx('hub_users').where({ username: row.username }).increment('failed_logins', 1);
    const current = await trx('hub_users')
      .where({ username: row.username })
      .first<{ failed_logins: number | string }>('failed_logins');
    if (Number(current.failed_logins) < MAX_FAILED_LOGINS) {
      await recordLogin(trx, ctx, row, { outcome: 'failure', reason });
      return;
    }
    const lockedUntil = new Date(ctx.clock.now().getTime() + LOCKOUT_MS).toISOString();
    await trx('hub_users')
      .where({ username: row.username })
      .update({ failed_logins: 0, locked_until: lockedUntil });
    await recordLogin(trx, ctx, row, { outcome: 'failure', reason, locked_until: lockedUntil });
    await recordAudit(trx, ctx.clock, {
      actor: row.username,
      entity: row.entity,
      action: 'login.lock',
      target: row.username,
      details: { locked_until: lockedUntil, failures: MAX_FAILED_LOGINS },
    });
  });
}

function recordLogin(
  executor: Knex | Knex.Transaction,
  ctx: AppContext,
  user: { username: string; entity: string | null },
  details: { outcome: 'success' | 'failure'; reason?: string; locked_until?: string },
): Promise<void> {
  return recordAudit(executor, ctx.clock, {
    actor: user.username,
    entity: user.entity,
    action: 'login',
    target: user.username,
    details,
  });
}

async function isCodeValid(secret: string, code: string, now: Date): Promise<boolean> {
  if (!/^\d{6}$/.test(code)) return false;
  const result = await verify({
    secret,
    token: code,
    epoch: Math.floor(now.getTime() / 1000),
    epochTolerance: TOTP_TOLERANCE_SECONDS,
  });
  return result.valid;
}

function mapUserRow({ username, entity, role, status, created_at }: UserRow): UserRecord {
  return { username, entity, role, status, created_at };
}

/*
 * Sign-in in two steps, for the portal: the password first, then the one-time code. Both steps
 * share the failure count of verifyUserLogin, and the count is cleared only when the code is
 * right too, so a known password cannot be used to reset the count between code guesses. Every
 * refusal is the same `invalid_login` message: an unknown, disabled or locked account answers
 * like a wrong password.
 */

/** Step one: the password. The account is not signed in until verifyUserCode succeeds. */
export async function verifyUserPassword(
  ctx: AppContext,
  username: string,
  password: string,
): Promise<UserRecord> {
  const row = await ctx.knex('hub_users').where({ username }).first<UserRow | undefined>();
  const passwordMatches = await verifySecret(password, row?.password_hash);
  const usable = await assertSignInAllowed(ctx, row, username);
  if (usable.status !== 'active' || !passwordMatches) {
    await countFailure(ctx, usable, usable.status !== 'active' ? 'disabled' : 'bad_password');
    throw invalidLogin();
  }
  return mapUserRow(usable);
}

/** Step two: the one-time code; the first right code also completes the enrollment. */
export async function verifyUserCode(ctx: AppContext, username: string, code: string): Promise<UserRecord> {
  const row = await ctx.knex('hub_users').where({ username }).first<UserRow | undefined>();
  const usable = await assertSignInAllowed(ctx, row, username);
  const now = ctx.clock.now();
  const failure =
    usable.status !== 'active'
      ? 'disabled'
      : (await isCodeValid(usable.totp_secret, code, now))
        ? null
        : 'bad_code';
  if (failure !== null) {
    await countFailure(ctx, usable, failure);
    throw invalidLogin();
  }
  await ctx.knex.transaction(async (trx) => {
    const enrolled = usable.totp_enrolled_at ?? isoNow(ctx.clock);
    await trx('hub_users')
      .where({ username })
      .update({ failed_logins: 0, locked_until: null, totp_enrolled_at: enrolled });
    await recordLogin(trx, ctx, usable, { outcome: 'success' });
  });
  return mapUserRow(usable);
}

async function assertSignInAllowed(
  ctx: AppContext,
  row: UserRow | undefined,
  username: string,
): Promise<UserRow> {
  if (row === undefined) {
    await recordLogin(
      ctx.knex,
      ctx,
      { username: username.slice(0, 100), entity: null },
      { outcome: 'failure', reason: 'unknown_user' },
    );
    throw invalidLogin();
  }
  if (row.locked_until !== null && new Date(row.locked_until) > ctx.clock.now()) {
    await recordLogin(ctx.knex, ctx, row, { outcome: 'failure', reason: 'locked' });
    throw invalidLogin();
  }
  return row;
}

/** The `otpauth://` URI to show as a QR code, only while the user has not yet entered a right code. */
export async function fetchTotpEnrollment(ctx: AppContext, username: string): Promise<string | null> {
  const row = await ctx.knex('hub_users').where({ username }).first<UserRow | undefined>();
  if (row === undefined || (row.totp_enrolled_at ?? null) !== null) return null;
  return generateURI({ issuer: TOTP_ISSUER, label: username, secret: row.totp_secret });
}

export async function fetchUsers(
  ctx: AppContext,
  options: { entity?: string } = {},
): Promise<Array<UserRecord & { enrolled: boolean; locked: boolean }>> {
  const query = ctx.knex('hub_users').orderBy(['entity', 'username']);
  if (options.entity !== undefined) query.where({ entity: options.entity });
  const rows = await query.select<UserRow[]>('*');
  const now = ctx.clock.now();
  return rows.map((row) => ({
    ...mapUserRow(row),
    enrolled: (row.totp_enrolled_at ?? null) !== null,
    locked: row.locked_until !== null && new Date(row.locked_until) > now,
  }));
}

export async function setUserStatus(
  ctx: AppContext,
  username: string,
  status: 'active' | 'disabled',
  actor: string,
): Promise<void> {
  await ctx.knex.transaction(async (trx) => {
    const row = await assertUserExists(trx, username);
    await trx('hub_users').where({ username }).update({ status });
    await recordAudit(trx, ctx.clock, {
      actor,
      entity: row.entity,
      action: status === 'active' ? 'user.enable' : 'user.disable',
      target: username,
    });
  });
}

/** A new TOTP secret: the user enrolls again (a QR code) at the next sign-in; the old app stops working. */
export async function resetUserTotp(ctx: AppContext, username: string, actor: string): Promise<void> {
  await ctx.knex.transaction(async (trx) => {
    const row = await assertUserExists(trx, username);
    await trx('hub_users')
      .where({ username })
      .update({ totp_secret: generateSecret(), totp_enrolled_at: null });
    await recordAudit(trx, ctx.clock, {
      actor,
      entity: row.entity,
      action: 'user.reset_totp',
      target: username,
    });
  });
}

async function assertUserExists(trx: Knex.Transaction, username: string): Promise<{ entity: string }> {
  const row = await trx('hub_users').where({ username }).first<{ entity: string } | undefined>('entity');
  if (row === undefined)
    throw new HubError('unknown_user', 404, `no portal user ${JSON.stringify(username)}`);
  return row;
}
