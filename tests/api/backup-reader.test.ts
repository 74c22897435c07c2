import assert from 'node:assert/strict';
import { createDecipheriv, createHmac, hkdfSync } from 'node:crypto';
import { copyFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { decodeProtectedHeader, SignJWT } from 'jose';
import { generate } from 'otplib';
import { SESSION_COOKIE, SESSION_COOKIE_KEY_PURPOSE } from '../../server/portal/portal-session.ts';
import type { ClientCredentials } from '../../server/services/client-service.ts';
import { authenticateCaller, TOKEN_KEY_PURPOSE } from '../../server/services/token-service.ts';
import {
  createUser,
  TOTP_KEY_PURPOSE,
  verifyUserLogin,
  type NewUser,
} from '../../server/services/user-service.ts';
import { HubError } from '../../warehouse/core/errors.ts';
import { startApiHub, type ApiHub } from '../support/api-hub.ts';
import { testDatabases } from '../support/databases.ts';
import { signIn } from '../support/portal-client.ts';

const sqlite = testDatabases.find((d) => d.name === 'sqlite')!;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const TOTP_STEP_SECONDS = 30;

function encodeBase32(bytes: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** Every text and blob value of every table of a SQLite file, as an attacker with the file would list them. */
function readAllValues(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{
      name: string;
    }>;
    const values: string[] = [];
    for (const { name } of tables) {
      for (const row of db.prepare(`SELECT * FROM "${name}"`).all() as Array<Record<string, unknown>>) {
        for (const value of Object.values(row)) {
          if (typeof value === 'string') values.push(value);
          else if (Buffer.isBuffer(value)) values.push(value.toString('base64url'));
        }
      }
    }
    return values;
  } finally {
    db.close();
  }
}

/**
 * What a value could be if it were a key: its text, the bytes it encodes in base64url or hex,
 * and the same for every piece of it between separators (a stored hash or sealed value has a
 * kid, a nonce and a body).
 */
function listKeyMaterials(values: string[]): Buffer[] {
  const texts = new Set<string>();
  for (const value of values) {
    texts.add(value);
    for (const piece of value.split(/[$.:,"{}[\]\s]+/)) if (piece.length >= 8) texts.add(piece);
  }
  const materials = new Map<string, Buffer>();
  const add = (bytes: Buffer) => {
    if (bytes.length > 0) materials.set(bytes.toString('hex'), bytes);
  };
  for (const text of texts) {
    add(Buffer.from(text, 'utf8'));
    if (/^[A-Za-z0-9_-]+=*$/.test(text)) add(Buffer.from(text, 'base64url'));
    if (/^(?:[0-9a-f]{2})+$/i.test(text)) add(Buffer.from(text, 'hex'));
  }
  return [...materials.values()];
}

/** Our own derivation, which an attacker can read in the source: the subkey if the material were the master key. */
const deriveAsMaster = (material: Buffer, purpose: string) =>
  Buffer.from(
    hkdfSync('sha256', material, Buffer.from('registry-hub keyring v1'), `registry-hub/${purpose}`, 32),
  );

/** A session cookie's signature as express-session makes it (cookie-signature: HMAC-SHA-256, base64 without padding). */
const signSessionId = (key: Buffer | string, sid: string) =>
  createHmac('sha256', key).update(sid).digest('base64').replace(/=+$/, '');

function openSealed(key: Buffer, sealed: string, purpose: string, context: string): string | null {
  const [, iv = '', body = ''] = sealed.split('.');
  const data = Buffer.from(body, 'base64url');
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(`${purpose}\0${context}`));
    decipher.setAuthTag(data.subarray(data.length - 16));
    return Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]).toString(
      'utf8',
    );
  } catch {
    return null;
  }
}

describe('A reader of a database backup can neither mint a token, compute a one-time code nor sign a session cookie [sqlite]', () => {
  let url: string;
  let hub: ApiHub;
  let client: ClientCredentials;
  let user: NewUser;
  let realToken: string;
  let values: string[];
  let materials: Buffer[];
  let masterKeys: Buffer[];
  /** A signed-in portal session: its id is in the backup, its cookie is not. */
  let sessionCookie: { sid: string; signature: string };

  const totpSecretOf = (u: NewUser) => new URL(u.otpauth_uri).searchParams.get('secret') ?? '';
  const epochAt = (step: number) => step * TOTP_STEP_SECONDS;
  const nowStep = () => Math.floor(hub.clock.now().getTime() / 1000 / TOTP_STEP_SECONDS);

  const mint = (key: Buffer) => {
    const nowMs = hub.clock.now().getTime();
    const seconds = Math.floor(nowMs / 1000);
    return new SignJWT({ ent: 'REG', iat_ms: nowMs })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: decodeProtectedHeader(realToken).kid! })
      .setIssuer('registry-hub')
      .setSubject(client.client_id)
      .setIssuedAt(seconds)
      .setExpirationTime(seconds + 900)
      .sign(key);
  };
  /** Whether the hub takes the token: the same check every API request goes through. */
  const accepts = async (token: string) => {
    try {
      await authenticateCaller(hub.ctx, `Bearer ${token}`, '127.0.0.1');
      return true;
    } catch (err) {
      if (err instanceof HubError && err.code === 'invalid_token') return false;
      throw err;
    }
  };

  before(async () => {
    url = await sqlite.createUrl();
    hub = await startApiHub(url);
    client = await hub.createClient('REG');
    realToken = await hub.fetchToken(client);
    user = await createUser(hub.ctx, { username: 'backup.victim', entity: 'REG', role: 'custodian' }, 'test');
    const code = await generate({ secret: totpSecretOf(user), epoch: epochAt(nowStep()) });
    await verifyUserLogin(hub.ctx, user.username, user.password, code);
    const portal = await signIn(hub, {
      username: user.username,
      password: user.password,
      secret: totpSecretOf(user),
    });
    const [, sid = '', signature = ''] =
      /^s:([^.]+)\.(.+)$/.exec(decodeURIComponent(portal.cookie(SESSION_COOKIE) ?? '')) ?? [];
    sessionCookie = { sid, signature };

    // The backup: the database file as a copy of the data folder would hold it.
    const file = url.slice('sqlite:'.length);
    await hub.ctx.knex.raw('PRAGMA wal_checkpoint(TRUNCATE)');
    const backup = path.join(path.dirname(file), 'backup-copy.sqlite');
    await copyFile(file, backup);
    values = readAllValues(backup);
    materials = listKeyMaterials(values);

    const keyFile = JSON.parse(await readFile(path.join(hub.dir, 'secret-keys.json'), 'utf8')) as {
      keys: Array<{ key: string }>;
    };
    masterKeys = keyFile.keys.map((k) => Buffer.from(k.key, 'base64url'));
  });

  after(async () => {
    await hub?.close();
    if (url !== undefined) await sqlite.dropUrl(url);
  });

  it('holds the users, the clients and the audit log, but no key, secret or password', () => {
    assert.ok(values.length > 200, `${values.length} values`);
    assert.ok(values.some((v) => v.includes(client.client_id)));
    assert.ok(values.some((v) => v === user.username));
    const secrets = [
      ...masterKeys.flatMap((k) => [k.toString('base64url'), k.toString('base64'), k.toString('hex')]),
      client.client_secret,
      user.password,
      totpSecretOf(user),
    ];
    for (const secret of secrets) {
      assert.ok(!values.some((v) => v.includes(secret)), 'a secret is in the backup');
    }
  });

  it('cannot mint a token the hub accepts from any value in it, taken as a key or as our master key', async () => {
    let tried = 0;
    for (const material of materials) {
      for (const key of [material, deriveAsMaster(material, TOKEN_KEY_PURPOSE)]) {
        tried += 1;
        assert.equal(await accepts(await mint(key)), false, 'a token minted from the backup was accepted');
      }
    }
    assert.ok(tried > 400, `${tried} keys tried`);
    // End to end too: a sample through the HTTP API.
    for (const material of materials.slice(0, 3)) {
      const res = await hub.call('GET', '/api/v1/queries', {
        token: await mint(deriveAsMaster(material, TOKEN_KEY_PURPOSE)),
      });
      assert.equal(res.status, 401, res.text);
    }
  });

  it('the same procedure with the key file mints a token the hub accepts: the test would see a key in the backup', async () => {
    assert.equal(await accepts(await mint(deriveAsMaster(masterKeys[0]!, TOKEN_KEY_PURPOSE))), true);
  });

  it('cannot open the stored TOTP secret or compute the next codes from any value in it', async () => {
    const sealed = values.find((v) => /^[a-z0-9]{12}\.[\w-]{16}\.[\w-]+$/.test(v))!;
    assert.ok(sealed !== undefined, 'no sealed TOTP secret in the backup');
    for (const material of materials) {
      for (const key of [material, deriveAsMaster(material, TOTP_KEY_PURPOSE)]) {
        if (key.length !== 32) continue;
        assert.equal(openSealed(key, sealed, TOTP_KEY_PURPOSE, user.username), null);
      }
    }
    // Any value that could be a base32 secret, and every material written as one, against the next three codes.
    const steps = [nowStep() + 1, nowStep() + 2, nowStep() + 3];
    const codesOf = (secret: string) =>
      Promise.all(steps.map((s) => generate({ secret, epoch: epochAt(s) })));
    const real = (await codesOf(totpSecretOf(user))).join(',');
    const candidates = new Set([
      ...values.filter((v) => /^[A-Z2-7]{26,}=*$/.test(v)),
      ...materials.filter((m) => m.length >= 16 && m.length <= 64).map(encodeBase32),
    ]);
    assert.ok(candidates.size > 50, `${candidates.size} candidate secrets`);
    for (const candidate of candidates) {
      assert.notEqual((await codesOf(candidate)).join(','), real, 'the backup yields the user’s codes');
    }
  });

  it('the key file opens the sealed secret: the TOTP check above had a real target', () => {
    const sealed = values.find((v) => /^[a-z0-9]{12}\.[\w-]{16}\.[\w-]+$/.test(v))!;
    assert.equal(
      openSealed(deriveAsMaster(masterKeys[0]!, TOTP_KEY_PURPOSE), sealed, TOTP_KEY_PURPOSE, user.username),
      totpSecretOf(user),
    );
  });

  it('cannot sign a cookie for a session it lists from any value in it, taken as a key or as our master key', async () => {
    assert.ok(values.includes(sessionCookie.sid), 'the signed-in session is in the backup');
    const openHome = (signature: string) =>
      fetch(`${hub.baseUrl}/`, {
        headers: { cookie: `${SESSION_COOKIE}=${encodeURIComponent(`s:${sessionCookie.sid}.${signature}`)}` },
        redirect: 'manual',
      });
    let tried = 0;
    for (const material of materials) {
      const derived = deriveAsMaster(material, SESSION_COOKIE_KEY_PURPOSE);
      // express-session takes its secrets as text; the hub passes the subkey in base64url.
      for (const key of [material, material.toString('base64url'), derived, derived.toString('base64url')]) {
        tried += 1;
        assert.notEqual(
          signSessionId(key, sessionCookie.sid),
          sessionCookie.signature,
          'a cookie signed from the backup would be accepted',
        );
      }
    }
    assert.ok(tried > 800, `${tried} keys tried`);
    // End to end too: a sample through the portal.
    for (const material of materials.slice(0, 3)) {
      const derived = deriveAsMaster(material, SESSION_COOKIE_KEY_PURPOSE).toString('base64url');
      const res = await openHome(signSessionId(derived, sessionCookie.sid));
      assert.equal(res.status, 303);
      assert.equal(res.headers.get('location'), '/login');
    }
  });

  it('the same procedure with the key file signs a cookie the portal accepts: the cookie check above had a real target', async () => {
    const subkey = deriveAsMaster(masterKeys[0]!, SESSION_COOKIE_KEY_PURPOSE).toString('base64url');
    const signature = signSessionId(subkey, sessionCookie.sid);
    assert.equal(signature, sessionCookie.signature);
    const res = await fetch(`${hub.baseUrl}/`, {
      headers: { cookie: `${SESSION_COOKIE}=${encodeURIComponent(`s:${sessionCookie.sid}.${signature}`)}` },
      redirect: 'manual',
    });
    assert.equal(res.status, 200);
  });
});
