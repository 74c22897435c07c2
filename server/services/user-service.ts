import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { generateSecret, generateURI, verify } from 'otplib';
import { recordAudit } from '../../warehouse/audit/record-audit.ts';
import { isoNow } from '../../warehouse/core/clock.ts';
import { conflict, HubError, invalidRequest } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { assertEntityExists } from './client-service.ts';
import { hashSecret, verifySecret } from './password-hash.ts';
import { inWriteTransaction } from '../../warehouse/write-transaction.ts';

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
  /** Sealed under the keyring's 'totp-secret' subkey; '' when the user has no authenticator yet. */
  totp_secret: string;
  /** The time step of the last accepted code. */
  totp_last_step: number | string | null;
  failed_logins: number;
  locked_until: string | null;
  totp_enrolled_at?: string | null;
}

export interface TotpEnrollment {
  username: string;
  otpauth_uri: string;
}

/** Why a sign-in step failed; for the audit log only, the caller always hears `invalid_login`. */
type LoginFailure =
  'disabled' | 'bad_password' | 'bad_code' | 'code_reused' | 'totp_not_enrolled' | 'totp_unreadable';

export const TOTP_ISSUER = 'Registry Hub';
export const MAX_FAILED_LOGINS = 5;
export const LOCKOUT_MS = 15 * 60_000;
const USERNAME_PATTERN = /^[a-z][a-z0-9._-]{2,63}$/;
const PASSWORD_BYTES = 18;
// One 30-second step either side, for phone clocks that drift.
const TOTP_TOLERANCE_SECONDS = 30;

/** The keyring purpose whose subkey encrypts TOTP secrets. */
export const TOTP_KEY_PURPOSE = 'totp-secret';

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
  await inWriteTransaction(ctx.knex, async (trx) => {
    const entity = await assertEntityExists(trx, input.entity);
    if ((await trx('hub_users').where({ username }).first('username')) !== undefined) {
      throw conflict('user_exists', `user ${JSON.stringify(username)} already exists`);
    }
    await trx('hub_users').insert({
      username,
      entity,
      role,
      password_hash: passwordHash,
      totp_secret: sealTotpSecret(ctx, username, totpSecret),
      totp_last_step: null,
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
  return { username, password, otpauth_uri: buildOtpauthUri(username, totpSecret) };
}

/**
 * A new TOTP secret for the user (a lost phone, or a secret cleared by migration 005): the old
 * authenticator stops working at once. Returns the URI to scan, shown only now.
 */
export async function resetUserTotp(
  ctx: AppContext,
  username: string,
  actor: string,
): Promise<TotpEnrollment> {
  const totpSecret = generateSecret();
  await inWriteTransaction(ctx.knex, async (trx) => {
    const row = await trx('hub_users').where({ username }).first<{ entity: string } | undefined>('entity');
    if (row === undefined) throw new HubError('unknown_user', 404, `no user ${JSON.stringify(username)}`);
    await trx('hub_users')
      .where({ username })
      .update({
        totp_secret: sealTotpSecret(ctx, username, totpSecret),
        totp_last_step: null,
        totp_enrolled_at: null,
      });
    await recordAudit(trx, ctx.clock, {
      actor,
      entity: row.entity,
      action: 'user.totp_reset',
      target: username,
    });
  });
  return { username, otpauth_uri: buildOtpauthUri(username, totpSecret) };
}

export async function fetchUser(ctx: AppContext, username: string): Promise<UserRecord | null> {
  const row = await ctx.knex('hub_users').where({ username }).first<UserRow | undefined>();
  return row === undefined ? null : mapUserRow(row);
}

/**
 * Password and one-time code together, or 401 `invalid_login`. Five failures in a row lock the
 * account for fifteen minutes; while locked, even the right password is refused, so guessing
 * gains nothing. A code is accepted once: the time step it belongs to is remembered, and a code
 * of that step or an earlier one is refused. Every attempt is audited, never with the password
 * or the code.
 */
export async function verifyUserLogin(
  ctx: AppContext,
  username: string,
  password: string,
  code: string,
): Promise<UserRecord> {
  return verifyLoginStep(ctx, username, password, async (row, passwordMatches, now) => {
    if (!passwordMatches) return { failure: 'bad_password' };
    return checkCode(ctx, row, code, now);
  });
}

/**
 * The first of two sign-in steps (the portal asks for the code on a second page): the password
 * alone. Failures count toward the same lockout as verifyUserLogin; success is not audited as a
 * sign-in and does not clear the failure count, since only verifyUserCode completes one.
 */
export async function verifyUserPassword(
  ctx: AppContext,
  username: string,
  password: string,
): Promise<UserRecord> {
  return verifyLoginStep(ctx, username, password, (_row, passwordMatches) =>
    Promise.resolve(passwordMatches ? { partial: true as const } : { failure: 'bad_password' as const }),
  );
}

/**
 * The second sign-in step, after verifyUserPassword succeeded for this username in the same
 * session (the caller keeps that state): the one-time code, accepted once. Success clears the
 * failure count and is audited as the sign-in.
 */
export async function verifyUserCode(ctx: AppContext, username: string, code: string): Promise<UserRecord> {
  return verifyLoginStep(ctx, username, undefined, (row, _passwordMatches, now) =>
    checkCode(ctx, row, code, now),
  );
}

type StepOutcome = { failure: LoginFailure } | { step: number } | { partial: true };

async function verifyLoginStep(
  ctx: AppContext,
  username: string,
  password: string | undefined,
  check: (row: UserRow, passwordMatches: boolean, now: Date) => Promise<StepOutcome>,
): Promise<UserRecord> {
  const row = await ctx.knex('hub_users').where({ username }).first<UserRow | undefined>();
  // Run even for an unknown user, so the answer takes as long as for a known one.
  const passwordMatches = password === undefined ? false : await verifySecret(password, row?.password_hash);
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
    throw invalidLogin();
  }
  const outcome: StepOutcome =
    row.status !== 'active' ? { failure: 'disabled' } : await check(row, passwordMatches, now);
  if ('failure' in outcome) {
    await countFailure(ctx, row, outcome.failure);
    throw invalidLogin();
  }
  if ('partial' in outcome) return mapUserRow(row);
  const accepted = await inWriteTransaction(ctx.knex, async (trx) => {
    // Two sign-ins with the same code race here: only one moves the step forward.
    const claimed = await trx('hub_users')
      .where({ username })
      .andWhere((q) => {
        void q.whereNull('totp_last_step').orWhere('totp_last_step', '<', outcome.step);
      })
      .update({
        totp_last_step: outcome.step,
        failed_logins: 0,
        locked_until: null,
        // The first right code completes the enrollment: the QR code is not shown again.
        totp_enrolled_at: row.totp_enrolled_at ?? isoNow(ctx.clock),
      });
    if (Number(claimed) === 0) return false;
    await recordLogin(trx, ctx, row, { outcome: 'success' });
    return true;
  });
  if (!accepted) {
    await countFailure(ctx, row, 'code_reused');
    throw invalidLogin();
  }
  return mapUserRow(row);
}

async function checkCode(ctx: AppContext, row: UserRow, code: string, now: Date): Promise<StepOutcome> {
  if (row.totp_secret === '') return { failure: 'totp_not_enrolled' };
  let secret: string;
  try {
    secret = ctx.keyring.unsealText(TOTP_KEY_PURPOSE, row.totp_secret, row.username);
  } catch (err) {
    ctx.logger.error(
      { username: row.username, err: (err as Error).message },
      'cannot decrypt the TOTP secret: is the key file the one it was sealed with?',
    );
    return { failure: 'totp_unreadable' };
  }
  if (!/^\d{6}$/.test(code)) return { failure: 'bad_code' };
  const result = await verify({
    secret,
    token: code,
    epoch: Math.floor(now.getTime() / 1000),
    epochTolerance: TOTP_TOLERANCE_SECONDS,
  });
  if (!result.valid || !('timeStep' in result)) return { failure: 'bad_code' };
  const lastStep = row.totp_last_step === null ? null : Number(row.totp_last_step);
  if (lastStep !== null && result.timeStep <= lastStep) return { failure: 'code_reused' };
  return { step: result.timeStep };
}

/**
 * Seals every TOTP secret that is not under the current key with the current key: run before
 * older keys are removed (`hub keys prune`), or their users could no longer sign in. Returns how
 * many were moved, and the users whose secrets no key in the keyring opens.
 */
export async function resealTotpSecrets(
  ctx: AppContext,
): Promise<{ resealed: number; unreadable: string[] }> {
  const current = ctx.keyring.currentKid();
  const rows = await ctx
    .knex('hub_users')
    .whereNot({ totp_secret: '' })
    .select<Array<{ username: string; totp_secret: string }>>('username', 'totp_secret');
  let resealed = 0;
  const unreadable: string[] = [];
  for (const row of rows) {
    if (row.totp_secret.startsWith(`${current}.`)) continue;
    let secret: string;
    try {
      secret = ctx.keyring.unsealText(TOTP_KEY_PURPOSE, row.totp_secret, row.username);
    } catch {
      unreadable.push(row.username);
      continue;
    }
    // Only if the secret was not reset meanwhile.
    const updated = await ctx
      .knex('hub_users')
      .where({ username: row.username, totp_secret: row.totp_secret })
      .update({ totp_secret: sealTotpSecret(ctx, row.username, secret) });
    resealed += Number(updated);
  }
  return { resealed, unreadable };
}

// The username is authenticated with the secret: a sealed value copied to another user's row does not open.
const sealTotpSecret = (ctx: AppContext, username: string, secret: string) =>
  ctx.keyring.sealText(TOTP_KEY_PURPOSE, secret, username);

const buildOtpauthUri = (username: string, secret: string) =>
  generateURI({ issuer: TOTP_ISSUER, label: username, secret });

// The count is incremented in the database, so concurrent wrong guesses all count.
async function countFailure(ctx: AppContext, row: UserRow, reason: LoginFailure): Promise<void> {
  await inWriteTransaction(ctx.knex, async (trx) => {
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

function mapUserRow({ username, entity, role, status, created_at }: UserRow): UserRecord {
  return { username, entity, role, status, created_at };
}

/** The `otpauth://` URI to show as a QR code, only while the user has not yet entered a right code. */
export async function fetchTotpEnrollment(ctx: AppContext, username: string): Promise<string | null> {
  const row = await ctx.knex('hub_users').where({ username }).first<UserRow | undefined>();
  if (row === undefined || (row.totp_enrolled_at ?? null) !== null || row.totp_secret === '') return null;
  return buildOtpauthUri(username, ctx.keyring.unsealText(TOTP_KEY_PURPOSE, row.totp_secret, username));
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
  await inWriteTransaction(ctx.knex, async (trx) => {
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

async function assertUserExists(trx: Knex.Transaction, username: string): Promise<{ entity: string }> {
  const row = await trx('hub_users').where({ username }).first<{ entity: string } | undefined>('entity');
  if (row === undefined)
    throw new HubError('unknown_user', 404, `no portal user ${JSON.stringify(username)}`);
  return row;
}
