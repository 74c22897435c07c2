import assert from 'node:assert/strict';
import { sign, verify } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readConfig } from '../../../server/config.ts';
import { pruneKeyFile, rotateKeyFile, type KeyFileContent } from '../../../warehouse/keyring/key-file.ts';
import { openKeyring, type Keyring } from '../../../warehouse/keyring/keyring.ts';
import { isHubErrorMatching } from '../../support/hub-errors.ts';

const KEY_A = 'a-first-key-of-at-least-32-characters!';
const KEY_B = 'b-second-key-of-at-least-32-characters';

describe('keyring', () => {
  let dir: string;
  let file: string;
  const fileKeyring = (createIfMissing = true): Keyring =>
    openKeyring({ kind: 'file', path: file, createIfMissing });
  const readContent = () => JSON.parse(readFileSync(file, 'utf8')) as KeyFileContent;
  const writeContent = (content: unknown) => {
    writeFileSync(file, JSON.stringify(content), { mode: 0o600 });
    chmodSync(file, 0o600);
  };

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hub-keyring-'));
    file = path.join(dir, 'secret-keys.json');
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('the key file', () => {
    it('is created on first use with mode 0600, once, and every process reading it derives the same keys', () => {
      const created: string[] = [];
      const first = openKeyring(
        { kind: 'file', path: file, createIfMissing: true },
        { onCreate: (f) => created.push(f) },
      );
      const kid = first.currentKid();
      assert.deepEqual(created, [file]);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const second = fileKeyring();
      assert.equal(second.currentKid(), kid);
      assert.deepEqual(second.deriveSubkey('api-token'), first.deriveSubkey('api-token'));
      assert.deepEqual(created, [file]);
    });

    it('is never created where HUB_SECRET_KEY_FILE points, nor again once it was read', async () => {
      assert.throws(
        () => fileKeyring(false).currentKid(),
        isHubErrorMatching(/no key file at .*hub keys rotate/),
      );
      const keyring = fileKeyring();
      keyring.currentKid();
      unlinkSync(file);
      // Another process's change is seen from the next turn of the event loop: a running hub's next request.
      await nextTurn();
      assert.throws(() => keyring.currentKid(), isHubErrorMatching(/has disappeared/));
    });

    it('sees a key file another process replaced from the next turn of the event loop', async () => {
      const keyring = fileKeyring();
      const oldKid = keyring.currentKid();
      const replacement = openKeyring({ kind: 'env', keys: [KEY_A] });
      writeContent({
        ...readContent(),
        keys: [
          {
            ...readContent().keys[0]!,
            kid: replacement.currentKid(),
            key: Buffer.from(KEY_A).toString('base64url'),
          },
        ],
      });
      await nextTurn();
      assert.notEqual(keyring.currentKid(), oldKid);
      assert.equal(keyring.findSubkey('api-token', oldKid), null);
    });

    it('is refused, naming the file and the fault, when malformed, tampered with or readable by others', () => {
      fileKeyring().currentKid();
      const good = readContent();
      const entry = good.keys[0]!;
      const faults: Array<[unknown, RegExp]> = [
        ['not json', /not JSON/],
        [{ ...good, format: 'other/1' }, /format must be/],
        [{ ...good, keys: [] }, /at least one key/],
        [{ ...good, keys: [{ ...entry, key: 'c2hvcnQ' }] }, /keys\[0\]\.key: must be at least 32 bytes/],
        [{ ...good, keys: [{ ...entry, kid: 'ABC' }] }, /keys\[0\]\.kid: must be 12/],
        [{ ...good, keys: [{ ...entry, kid: '000000000000' }] }, /keys\[0\]\.kid: does not match its key/],
        [{ ...good, keys: [entry, entry] }, /keys\[1\]\.kid: .* appears twice/],
        [
          { ...good, keys: [{ ...entry, retired_at: '2026-01-01T00:00:00.000Z' }] },
          /keys\[0\] is the current key/,
        ],
      ];
      for (const [content, pattern] of faults) {
        if (typeof content === 'string') writeFileSync(file, content);
        else writeContent(content);
        assert.throws(
          () => fileKeyring().currentKid(),
          isHubErrorMatching(new RegExp(`key file ${file}: .*${pattern.source}`)),
        );
      }
      writeContent(good);
      chmodSync(file, 0o644);
      assert.throws(
        () => fileKeyring().currentKid(),
        isHubErrorMatching(/readable by other accounts \(mode 644\): run chmod 600/),
      );
      chmodSync(file, 0o600);
      assert.equal(fileKeyring().currentKid(), entry.kid);
    });

    it('is read again when it changes, so a running hub sees a rotation and a prune at its next request', () => {
      const keyring = fileKeyring();
      const oldKid = keyring.currentKid();
      const oldTokenKey = keyring.deriveSubkey('api-token');
      const { kid, previous } = rotateKeyFile(file, new Date('2026-03-01T00:00:00.000Z'));
      assert.deepEqual(previous, [oldKid]);
      assert.equal(keyring.currentKid(), kid);
      assert.deepEqual(keyring.findSubkey('api-token', oldKid), oldTokenKey);
      assert.deepEqual(
        keyring.listKeys().map((k) => [k.kid, k.current, k.retired_at]),
        [
          [kid, true, null],
          [oldKid, false, '2026-03-01T00:00:00.000Z'],
        ],
      );
      assert.deepEqual(
        pruneKeyFile(file, () => true),
        [oldKid],
      );
      assert.equal(keyring.findSubkey('api-token', oldKid), null);
      assert.equal(keyring.findSecretKey('api-token', oldKid), null);
      assert.deepEqual(
        pruneKeyFile(file, () => true),
        [],
        'the current key always stays',
      );
    });

    it('rotation creates a missing file and leaves no temporary file behind', () => {
      rmSync(file, { force: true });
      const { kid, previous } = rotateKeyFile(file, new Date());
      assert.deepEqual(previous, []);
      assert.equal(fileKeyring(false).currentKid(), kid);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      rotateKeyFile(file, new Date());
      assert.deepEqual(readdirSync(dir), ['secret-keys.json']);
      assert.throws(
        () => pruneKeyFile(path.join(dir, 'none.json'), () => true),
        isHubErrorMatching(/no key file/),
      );
    });
  });

  describe('subkeys', () => {
    it('differ by purpose and by master key, and reveal neither', () => {
      const a = openKeyring({ kind: 'env', keys: [KEY_A] });
      const b = openKeyring({ kind: 'env', keys: [KEY_B] });
      const keys = [
        a.deriveSubkey('api-token').key,
        a.deriveSubkey('totp-secret').key,
        a.deriveSubkey('client-secret').key,
        b.deriveSubkey('api-token').key,
      ];
      assert.equal(new Set(keys.map((k) => k.toString('hex'))).size, keys.length);
      assert.ok(keys.every((k) => k.length === 32 && !k.includes(Buffer.from(KEY_A))));
      assert.equal(a.deriveSubkey('audit-checkpoint', 64).key.length, 64);
      assert.throws(() => a.deriveSubkey('Not A Purpose'), /key purpose/);
    });

    it('from HUB_SECRET_KEY: the first key is current, the others still open what they sealed', () => {
      const before = openKeyring({ kind: 'env', keys: [KEY_A] });
      const sealed = before.sealText('totp-secret', 'JBSWY3DPEHPK3PXP', 'amal');
      const after = openKeyring({ kind: 'env', keys: [KEY_B, KEY_A] });
      assert.notEqual(after.currentKid(), before.currentKid());
      assert.equal(after.unsealText('totp-secret', sealed, 'amal'), 'JBSWY3DPEHPK3PXP');
      assert.ok(after.sealText('totp-secret', 'x', 'amal').startsWith(`${after.currentKid()}.`));
      const without = openKeyring({ kind: 'env', keys: [KEY_B] });
      assert.throws(
        () => without.unsealText('totp-secret', sealed, 'amal'),
        isHubErrorMatching(/not in the keyring/),
      );
    });

    it('seal: another context, another purpose or an altered value does not open', () => {
      const keyring = openKeyring({ kind: 'env', keys: [KEY_A] });
      const sealed = keyring.sealText('totp-secret', 'secret text', 'amal');
      assert.notEqual(
        keyring.sealText('totp-secret', 'secret text', 'amal'),
        sealed,
        'a fresh nonce each time',
      );
      assert.throws(
        () => keyring.unsealText('totp-secret', sealed, 'omar'),
        isHubErrorMatching(/does not authenticate/),
      );
      assert.throws(
        () => keyring.unsealText('other-purpose', sealed, 'amal'),
        isHubErrorMatching(/does not authenticate/),
      );
      const altered = sealed.slice(0, -2) + (sealed.endsWith('AA') ? 'AB' : 'AA');
      assert.throws(
        () => keyring.unsealText('totp-secret', altered, 'amal'),
        isHubErrorMatching(/does not authenticate/),
      );
      assert.throws(
        () => keyring.unsealText('totp-secret', 'plain', 'amal'),
        isHubErrorMatching(/not a sealed value/),
      );
    });

    it('Ed25519 pairs: the same key gives the same pair, old kids keep their public keys for verifiers', () => {
      const a = openKeyring({ kind: 'env', keys: [KEY_A] });
      const pair = a.deriveSigningKeyPair('dci-signing');
      const signature = sign(null, Buffer.from('payload'), pair.privateKey);
      const rotated = openKeyring({ kind: 'env', keys: [KEY_B, KEY_A] });
      const published = rotated.listSigningPublicKeys('dci-signing');
      assert.deepEqual(
        published.map((k) => k.kid),
        [rotated.currentKid(), a.currentKid()],
      );
      assert.equal(verify(null, Buffer.from('payload'), published[1]!.publicKey, signature), true);
      assert.equal(verify(null, Buffer.from('payload'), published[0]!.publicKey, signature), false);
      assert.equal(rotated.findSigningKeyPair('dci-signing', 'ffffffffffff'), null);
    });
  });

  describe('configuration', () => {
    it('takes the key file from HUB_SECRET_KEY_FILE, or the data folder, or keys from HUB_SECRET_KEY, never two at once', () => {
      assert.deepEqual(readConfig({ HUB_DATA_DIR: dir }).secretKeys, {
        kind: 'file',
        path: path.join(dir, 'secret-keys.json'),
        createIfMissing: true,
      });
      assert.deepEqual(readConfig({ HUB_SECRET_KEY_FILE: file }).secretKeys, {
        kind: 'file',
        path: file,
        createIfMissing: false,
      });
      assert.deepEqual(readConfig({ HUB_SECRET_KEY: `${KEY_A}, ${KEY_B}` }).secretKeys, {
        kind: 'env',
        keys: [KEY_A, KEY_B],
      });
      assert.throws(() => readConfig({ HUB_SECRET_KEY: KEY_A, HUB_SECRET_KEY_FILE: file }), /not both/);
      assert.throws(
        () => readConfig({ HUB_SECRET_KEY: `${KEY_A},short` }),
        (err: unknown) =>
          err instanceof Error &&
          /HUB_SECRET_KEY: each key needs at least 32 characters/.test(err.message) &&
          !err.message.includes(KEY_A),
      );
    });
  });
});
