import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describeEachDatabase } from '../support/databases.ts';
import { assertDciError, recordsOf, searchItems, sendChecked, sendValid } from './support/dci-assert.ts';
import {
  BIRTH_ROWS,
  buildEnvelope,
  buildSearch,
  byUin,
  P,
  PEOPLE_ROWS,
  startCallbackReceiver,
  startDciHub,
  UNKNOWN,
  type CallbackReceiver,
  type DciHub,
} from './support/dci-hub.ts';
import { assertValid, requestSchema } from './support/dci-schemas.ts';

type Json = Record<string, unknown>;
const ACK = (body: unknown) => (body as { message: { ack_status: string; correlation_id: string } }).message;

describeEachDatabase(
  'DCI callbacks: async search, txn status, subscriptions and notify, receiving endpoints',
  (db) => {
    let hub: DciHub;
    let token: string;
    let receiver: CallbackReceiver;

    before(async () => {
      hub = await startDciHub(db.url());
      for (const table of ['cspd_personal_info', 'cspd_births', 'cspd_deaths', 'naf_households'])
        await hub.grant('SPMIS', table);
      token = (await hub.createCaller('SPMIS')).token;
    });
    beforeEach(async () => {
      receiver = await startCallbackReceiver();
    });
    afterEach(async () => receiver?.close());
    after(async () => hub?.close());

    it('acknowledges an async search at once and posts the signed on-search to sender_uri', async () => {
      for (const registry of ['social', 'crvs'] as const) {
        const before = receiver.received.length;
        const body = buildEnvelope('search', buildSearch(byUin(P.huda)), { senderUri: receiver.url });
        const res = await sendValid(hub, registry, '/registry/search', body, token);
        assert.equal(res.status, 200, res.text);
        const ack = ACK(res.body);
        assert.equal(ack.ack_status, 'ACK');
        const [callback] = (await receiver.waitFor(before + 1)).slice(before);
        assertValid(
          requestSchema(registry, '/registry/on-search'),
          callback,
          `${registry} on-search callback`,
        );
        assert.equal((callback!.header as Json).action, 'on-search');
        assert.match(String(callback!.signature), /^Signature: namespace="dci"/);
        const message = callback!.message as Json;
        assert.equal(message.correlation_id, ack.correlation_id);
        assert.equal(message.transaction_id, (body.message as Json).transaction_id);
        assert.equal(recordsOf(searchItems(callback)[0]).length, 1);
      }
    });

    it('refuses an async search without a usable sender_uri', async () => {
      for (const uri of [undefined, 'not a url', 'ftp://example.org/x']) {
        const body = buildEnvelope(
          'search',
          buildSearch(byUin(P.huda)),
          uri === undefined ? {} : { senderUri: uri },
        );
        assertDciError(
          await sendChecked(hub, 'crvs', '/registry/search', body, token),
          400,
          'err.sender_uri.invalid',
        );
      }
    });

    // attribute_value is a oneOf whose branches overlap (a string is both a transaction_id and a
    // correlation_id; SubscriptionCodeList has no type), so no txn status request validates
    // against the YAML: these are sent unchecked, their answers checked.
    it('reports a transaction status, sync and async, without handing back records', async () => {
      const search = buildEnvelope('search', buildSearch(byUin(P.huda), 'ref-status'), {
        senderUri: receiver.url,
      });
      const transactionId = String((search.message as Json).transaction_id);
      const ack = ACK((await sendValid(hub, 'crvs', '/registry/search', search, token)).body);
      await receiver.waitFor(1);
      const status = (attribute_type: string, attribute_value: unknown) => ({
        transaction_id: `status-${randomUUID()}`,
        txnstatus_request: { reference_id: 'st-1', txn_type: 'search', attribute_type, attribute_value },
      });
      for (const [type, value] of [
        ['transaction_id', transactionId],
        ['correlation_id', ack.correlation_id],
        ['reference_id_list', ['ref-status']],
      ] as const) {
        const res = await sendChecked(
          hub,
          'crvs',
          '/registry/sync/txn/status',
          buildEnvelope('txn-status', status(type, value)),
          token,
        );
        assert.equal(res.status, 200, res.text);
        const answer = (
          res.body as { message: { txnstatus_response: { txn_type: string; txn_status: Json } } }
        ).message.txnstatus_response;
        assert.equal(answer.txn_type, 'on-search');
        assert.equal(answer.txn_status.correlation_id, ack.correlation_id);
        const [item] = answer.txn_status.search_response as Json[];
        assert.equal(item!.status, 'succ');
        assert.equal(item!.data, undefined, 'a status check returns no records');
      }
      const unknown = await sendChecked(
        hub,
        'crvs',
        '/registry/sync/txn/status',
        buildEnvelope('txn-status', status('transaction_id', 'never-sent')),
        token,
      );
      const [rejected] = (
        unknown.body as { message: { txnstatus_response: { txn_status: { search_response: Json[] } } } }
      ).message.txnstatus_response.txn_status.search_response;
      assert.equal(rejected!.status_reason_code, 'rjct.reference_id.invalid');

      const socialStatus = await sendChecked(
        hub,
        'social',
        '/registry/sync/txn/status',
        buildEnvelope('txn-status', status('transaction_id', 'never-sent')),
        token,
      );
      assert.equal(socialStatus.status, 200, socialStatus.text);

      const asyncRes = await sendChecked(
        hub,
        'crvs',
        '/registry/txn/status',
        buildEnvelope('txn-status', status('transaction_id', transactionId), { senderUri: receiver.url }),
        token,
      );
      assert.equal(ACK(asyncRes.body).ack_status, 'ACK');
      const [, onStatus] = await receiver.waitFor(2);
      assertValid(requestSchema('crvs', '/registry/txn/on-status'), onStatus, 'txn/on-status callback');
      assert.equal((onStatus!.header as Json).action, 'txn-on-status');
      const other = (await hub.createCaller('SPMIS')).token;
      const foreign = await sendChecked(
        hub,
        'crvs',
        '/registry/sync/txn/status',
        buildEnvelope('txn-status', status('transaction_id', transactionId)),
        other,
      );
      const [notMine] = (
        foreign.body as { message: { txnstatus_response: { txn_status: { search_response: Json[] } } } }
      ).message.txnstatus_response.txn_status.search_response;
      assert.equal(notMine!.status, 'rjct', 'another client cannot read this client’s transactions');
    });

    it('notifies a birth subscriber when a connector load brings a birth, and a person subscriber when the person changes', async () => {
      const subscribe = (reg_event_type: string, filter: unknown, referenceId: string) =>
        buildEnvelope(
          'subscribe',
          {
            transaction_id: `sub-${randomUUID()}`,
            subscribe_request: [
              {
                reference_id: referenceId,
                timestamp: '2026-03-02T08:00:00Z',
                subscribe_criteria: {
                  reg_event_type,
                  filter_type: 'predicate',
                  filter,
                  notify_record_type: 'spdci-extensions-dci:Person',
                },
              },
            ],
          },
          { senderUri: receiver.url },
        );
      const births = subscribe(
        'live_birth',
        [{ expression1: { attribute_name: 'mother_uin', operator: 'eq', attribute_value: P.amina } }],
        'births-of-amina',
      );
      assert.equal(
        ACK((await sendValid(hub, 'crvs', '/registry/subscribe', births, token)).body).ack_status,
        'ACK',
      );
      const changes = subscribe(
        'DATA_MODIFICATION',
        [{ expression1: { attribute_name: 'UIN', operator: 'eq', attribute_value: P.huda } }],
        'huda-changes',
      );
      assert.equal(
        ACK((await sendValid(hub, 'crvs', '/registry/subscribe', changes, token)).body).ack_status,
        'ACK',
      );
      const [onBirths, onChanges] = await receiver.waitFor(2);
      for (const callback of [onBirths, onChanges])
        assertValid(requestSchema('crvs', '/registry/on-subscribe'), callback, 'on-subscribe callback');
      const subscription = ((onBirths!.message as Json).subscribe_response as Json[])[0]!;
      assert.equal(subscription.status, 'succ', JSON.stringify(subscription));
      const code = String((subscription.subscriptions as Json[])[0]!.code);

      // The same subscription again is refused with its reason.
      await sendValid(hub, 'crvs', '/registry/subscribe', births, token);
      const [again] = (await receiver.waitFor(3)).slice(2);
      assert.equal(
        ((again!.message as Json).subscribe_response as Json[])[0]!.status_reason_code,
        'rjct.event.already_subscribed',
      );

      // A load that brings nothing new notifies nobody; a new birth and a changed person do.
      await hub.reload('cspd-births', BIRTH_ROWS);
      assert.equal(receiver.received.length, 3);
      await hub.reload('cspd-personal-info', [
        ...PEOPLE_ROWS,
        `${P.newborn},رامي,سامر,الحسن,1,2026-02-20,S,H1`,
      ]);
      await hub.reload('cspd-births', [...BIRTH_ROWS, `BR-1201,${P.newborn},${P.amina},2026-02-20`]);
      const widowRemarried = PEOPLE_ROWS.map((row) =>
        row.startsWith(P.huda) ? row.replace(',W,', ',M,') : row,
      );
      await hub.reload('cspd-personal-info', [
        ...widowRemarried,
        `${P.newborn},رامي,سامر,الحسن,1,2026-02-20,S,H1`,
      ]);
      const notifies = receiver.received.slice(3);
      assert.equal(notifies.length, 2, JSON.stringify(notifies).slice(0, 500));
      for (const notify of notifies) {
        assertValid(requestSchema('crvs', '/registry/notify'), notify, 'notify');
        assert.equal((notify.header as Json).action, 'notify');
      }
      const recordOf = (notify: Json) =>
        (
          (((notify.message as Json).notify_event as Json[])[0]!.data as Json).reg_records as {
            '@graph': Json[];
          }
        )['@graph'][0]!;
      assert.equal(recordOf(notifies[0]!).identifier, P.newborn);
      assert.equal(recordOf(notifies[1]!).identifier, P.huda);
      assert.equal(recordOf(notifies[1]!).marital_status, 'M');

      // Unsubscribed: no more notifications; an unknown code is rejected with its reason.
      const unsubscribe = buildEnvelope(
        'unsubscribe',
        {
          transaction_id: 'unsub-1',
          timestamp: '2026-03-02T08:00:00Z',
          subscription_codes: [code, 'no-such-code'],
        },
        { senderUri: receiver.url },
      );
      assert.equal(
        ACK((await sendChecked(hub, 'crvs', '/registry/unsubscribe', unsubscribe, token)).body).ack_status,
        'ACK',
      );
      const [onUnsubscribe] = (await receiver.waitFor(6)).slice(5);
      assertValid(
        requestSchema('crvs', '/registry/on-unsubscribe'),
        onUnsubscribe,
        'on-unsubscribe callback',
      );
      assert.deepEqual((onUnsubscribe!.message as Json).subscription_status, [
        { code, status: 'unsubscribe' },
      ]);
      assert.equal((onUnsubscribe!.message as Json).status_reason_code, 'rjct.subscription_code.invalid');
      await hub.reload('cspd-births', [
        ...BIRTH_ROWS,
        `BR-1201,${P.newborn},${P.amina},2026-02-20`,
        `BR-1301,${UNKNOWN},${P.amina},2026-03-01`,
      ]);
      assert.equal(receiver.received.length, 6);
    });

    it('validates, stores and acknowledges what peers send to the receiving endpoints', async () => {
      const callbackHeader = (action: string) => ({
        version: '1.0.0',
        message_id: randomUUID(),
        message_ts: '2026-03-02T08:00:00Z',
        action,
        status: 'succ',
        sender_id: 'crvs.example.org',
        total_count: 1,
      });
      const onSearch = {
        header: callbackHeader('on-search'),
        message: {
          transaction_id: 't-1',
          correlation_id: 'peer-corr-1',
          search_response: [
            {
              reference_id: 'r',
              timestamp: '2026-03-02T08:00:00Z',
              status: 'succ',
              data: { reg_record_type: 'person', reg_records: {} },
            },
          ],
        },
      };
      const notify = {
        header: callbackHeader('notify'),
        message: {
          transaction_id: 't-2',
          notify_event: [
            {
              reference_id: 'r',
              timestamp: '2026-03-02T08:00:00Z',
              data: { reg_record_type: 'person', reg_records: {} },
            },
          ],
        },
      };
      const onStatus = {
        header: callbackHeader('txn-on-status'),
        message: {
          transaction_id: 't-3',
          correlation_id: 'peer-corr-3',
          txnstatus_response: {
            txn_type: 'on-search',
            txn_status: { transaction_id: 't', correlation_id: 'c', search_response: [] },
          },
        },
      };
      const onSubscribe = {
        header: { ...callbackHeader('on-subscribe'), status: undefined },
        message: { transaction_id: 't-4', correlation_id: 'peer-corr-4', subscribe_response: [] },
      };
      const onUnsubscribe = {
        header: { ...callbackHeader('on-unsubscribe'), status: undefined },
        message: {
          transaction_id: 't-5',
          correlation_id: 'peer-corr-5',
          timestamp: '2026-03-02T08:00:00Z',
          status: 'succ',
        },
      };
      const cases: Array<['social' | 'crvs', string, Json]> = [
        ['crvs', '/registry/on-search', onSearch],
        ['crvs', '/registry/notify', notify],
        ['crvs', '/registry/txn/on-status', onStatus],
        ['crvs', '/registry/on-subscribe', onSubscribe],
        ['crvs', '/registry/on-unsubscribe', onUnsubscribe],
        [
          'social',
          '/registry/on-search',
          {
            ...onSearch,
            message: {
              ...onSearch.message,
              search_response: [
                {
                  reference_id: 'r',
                  timestamp: '2026-03-02T08:00:00Z',
                  status: 'succ',
                  data: { reg_records: [] },
                },
              ],
            },
          },
        ],
        [
          'social',
          '/registry/txn/on-status',
          {
            ...onStatus,
            message: {
              ...onStatus.message,
              txnstatus_response: {
                txn_type: 'search',
                txn_status: { transaction_id: 't', correlation_id: 'c', search_response: [] },
              },
            },
          },
        ],
      ];
      for (const [registry, apiPath, body] of cases) {
        const res = await sendValid(hub, registry, apiPath, JSON.parse(JSON.stringify(body)) as Json, token);
        assert.equal(res.status, 200, `${registry} ${apiPath}: ${res.text}`);
        assert.equal(ACK(res.body).ack_status, 'ACK');
      }
      const stored = await hub.ctx
        .knex('hub_dci_received')
        .orderBy('id')
        .select<Array<{ registry: string; action: string; correlation_id: string }>>(
          'registry',
          'action',
          'correlation_id',
        );
      assert.deepEqual(
        stored.map((r) => `${r.registry}:${r.action}`),
        [
          'crvs:on-search',
          'crvs:notify',
          'crvs:txn-on-status',
          'crvs:on-subscribe',
          'crvs:on-unsubscribe',
          'social:on-search',
          'social:txn-on-status',
        ],
      );
      assert.equal(stored[0]!.correlation_id, 'peer-corr-1');
      // A callback header needs its status; the wrong action is refused; nothing more is stored.
      assertDciError(
        await sendChecked(
          hub,
          'crvs',
          '/registry/notify',
          { ...notify, header: { ...notify.header, status: undefined } },
          token,
        ),
        400,
        'err.request.bad',
      );
      assertDciError(
        await sendChecked(
          hub,
          'crvs',
          '/registry/notify',
          { ...notify, header: { ...notify.header, action: 'on-search' } },
          token,
        ),
        400,
        'err.request.bad',
      );
      assert.equal((await hub.ctx.knex('hub_dci_received').select('id')).length, stored.length);
    });
  },
);
