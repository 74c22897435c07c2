import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { grantAccess, revokeAccess } from '../../privileges/grants.ts';
import { fetchAbility } from '../../privileges/ability-cache.ts';
import { closeContext, type AppContext } from '../../server/context.ts';
import { disableClient } from '../../server/services/client-service.ts';
import { PERSON, startApiHub, superAdmin, type ApiHub } from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { GRANT_TERMS, openTestContext } from '../support/hub-context.ts';

const UNLIMITED = { ratePerMinute: 1_000_000_000, ratePerDay: 1_000_000_000 };
const BUSY_CONNECTIONS = 4;
const ROUNDS = 10;

/**
 * Lookups sent without pause by another client until stopped, so that the hub always has reads
 * in flight (and, on SQLite, a read snapshot open) when the test's own requests arrive.
 */
function keepBusy(hub: ApiHub, token: string): { stop(): Promise<number[]> } {
  let running = true;
  const statuses: number[] = [];
  const loops = Array.from({ length: BUSY_CONNECTIONS }, async () => {
    while (running) {
      const res = await hub.call('GET', `/api/v1/persons/${PERSON.mohammad}`, { token });
      statuses.push(res.status);
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return statuses;
    },
  };
}

/** The status of the next HTTP response on a raw keep-alive socket, its body consumed. */
function readNextStatus(socket: Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      const headerEnd = buffer.indexOf('\r\n\r\n');
      if (headerEnd === -1) return;
      const length = Number(/content-length: (\d+)/i.exec(buffer.slice(0, headerEnd))?.[1] ?? 0);
      if (buffer.length < headerEnd + 4 + length) return;
      socket.off('data', onData);
      resolve(Number(buffer.slice(9, 12)));
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

/**
 * Runs `work` in a check phase of the event loop once the hub has been idle for a moment, so that
 * no end of an earlier snapshot is still queued in that phase.
 */
const inIdleCheckPhase = (work: () => Promise<void>): Promise<void> =>
  new Promise((resolve, reject) => {
    setTimeout(() => setImmediate(() => void work().then(resolve, reject)), 20);
  });

describeEachDatabase(
  'Consumer API: a request reads the warehouse as it was when the request arrived',
  (db) => {
    let hub: ApiHub;
    /** Another hub process on the same warehouse: its own connections, its own caches. */
    let other: AppContext;
    let busy: { stop(): Promise<number[]> };

    before(async () => {
      hub = await startApiHub(db.url());
      other = openTestContext(db.url(), hub.dir, { clock: hub.clock });
      await hub.grant('NAF', 'reg_people', ['national_id', 'full_name']);
      await hub.grant('NAF', 'reg_households');
      await hub.grant('PAY', 'reg_people');
      busy = keepBusy(hub, (await hub.createCaller('PAY', UNLIMITED)).token);
    });

    after(async () => {
      const statuses = await busy.stop();
      await closeContext(other);
      await hub.close();
      assert.ok(statuses.length > 0, 'the busy client sent no request');
      assert.deepEqual([...new Set(statuses)], [200], 'every lookup of the busy client was answered');
    });

    const tablesOf = async (token: string): Promise<string[]> => {
      const res = await hub.call('GET', `/api/v1/persons/${PERSON.mohammad}`, { token });
      assert.equal(res.status, 200, res.text);
      return Object.keys((res.body as { tables: Record<string, unknown> }).tables).sort();
    };

    it('a grant revoked or given again by another hub process counts from the next request', async () => {
      const { token } = await hub.createCaller('NAF', UNLIMITED);
      const access = { consumer: 'NAF', table: 'reg_households', columns: [], actor: superAdmin };
      for (let round = 0; round < ROUNDS; round++) {
        assert.deepEqual(await tablesOf(token), ['reg_households', 'reg_people'], `round ${round}`);
        await revokeAccess(other, access);
        assert.deepEqual(await tablesOf(token), ['reg_people'], `round ${round}: the revoke did not count`);
        await grantAccess(other, { ...access, ...GRANT_TERMS });
      }
      assert.deepEqual(await tablesOf(token), ['reg_households', 'reg_people']);
    });

    it('a client disabled by another hub process is refused on its next request', async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const { credentials, token } = await hub.createCaller('NAF', UNLIMITED);
        assert.deepEqual(await tablesOf(token), ['reg_households', 'reg_people'], `round ${round}`);
        await disableClient(other, credentials.client_id, superAdmin.name);
        const res = await hub.call('GET', `/api/v1/persons/${PERSON.mohammad}`, { token });
        assert.equal(res.status, 401, `round ${round}: the disabled client was answered ${res.status}`);
      }
    });

    it('a request sent after a commit sees it, though it arrives while reads of the turn before are in flight', async () => {
      const { credentials, token } = await hub.createCaller('NAF', UNLIMITED);
      const { hostname, port } = new URL(hub.baseUrl);
      const socket = connect(Number(port), hostname);
      await once(socket, 'connect');
      const send = () =>
        socket.write(
          `GET /api/v1/persons/${PERSON.mohammad} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${token}\r\n\r\n`,
        );
      try {
        let answered = readNextStatus(socket);
        send();
        assert.equal(await answered, 200);
        // On SQLite the sequence is exact: a read opens the turn's snapshot, another connection
        // commits the disable, and the request is on the wire before the turn ends; the hub reads it
        // in the next poll phase, before the check phase that would end the snapshot anyway.
        const sqliteFile = db.name === 'sqlite' ? db.url().slice('sqlite:'.length) : null;
        answered = readNextStatus(socket);
        await inIdleCheckPhase(async () => {
          await hub.ctx.reads.first('SELECT COUNT(*) AS n FROM hub_clients', []);
          if (sqliteFile === null) {
            await disableClient(other, credentials.client_id, superAdmin.name);
          } else {
            const raw = new Database(sqliteFile);
            raw
              .prepare("UPDATE hub_clients SET status = 'disabled' WHERE client_id = ?")
              .run(credentials.client_id);
            raw.close();
          }
          send();
        });
        assert.equal(await answered, 401, 'the request read the client as it was before it was sent');
      } finally {
        socket.destroy();
      }
    });

    it("the hub's own writes count for its next read, made at once without a request between them", async () => {
      const access = { consumer: 'NAF', table: 'reg_households', columns: [], actor: superAdmin };
      const readable = async () =>
        (await fetchAbility(hub.ctx, hub.ctx.abilities, 'NAF')).can('read', 'reg_households');
      for (let round = 0; round < ROUNDS; round++) {
        assert.equal(await readable(), true, `round ${round}`);
        await revokeAccess(hub.ctx, access);
        assert.equal(await readable(), false, `round ${round}: the hub did not read its own revoke`);
        await grantAccess(hub.ctx, { ...access, ...GRANT_TERMS });
      }
    });
  },
);
