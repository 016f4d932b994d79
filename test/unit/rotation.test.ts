// The readiness rotation in front of a farm's balancer, against real HTTPS listeners on loopback: a node that
// says it is not ready leaves at once, one that does not answer only after failureThreshold probes in a row (so
// that one slow answer of the only ready node never empties the rotation), and a node restarted on other ports
// is handed to the balancer again.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startRotation, type RotationNode } from '../../src/farm/rotation.js';
import type { Upstream } from '../../src/farm/balancer.js';
import { writeDevCa, type DevCaFiles } from '../../src/tls/dev-ca.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

type Behaviour = 'ready' | 'unready' | 'hang';

interface FakeNode {
  server: Server;
  port: number;
  behaviour: Behaviour;
}

let ca: DevCaFiles;
const servers: Server[] = [];

async function node(behaviour: Behaviour): Promise<FakeNode> {
  const state = { behaviour } as FakeNode;
  const server = createServer({ cert: readFileSync(ca.tlsCert), key: readFileSync(ca.tlsKey) }, (_req, res) => {
    if (state.behaviour === 'hang') return; // never answers; the probe's timeout ends it
    res.writeHead(state.behaviour === 'ready' ? 200 : 503).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  state.server = server;
  state.port = (server.address() as AddressInfo).port;
  return state;
}

function rotationOf(nodes: () => RotationNode[]) {
  const applied: Upstream[][] = [];
  const rotation = startRotation({
    balancer: { setUpstreams: async (upstreams) => void applied.push([...upstreams]) },
    nodes,
    caFile: ca.caCert,
    intervalMs: 60_000, // probed by hand below
    timeoutMs: 200,
  });
  return { rotation, applied };
}

describe('farm rotation', () => {
  before(async () => {
    ca = await writeDevCa({ outDir: tempDir('mf-rotation-ca-'), hosts: ['localhost', '127.0.0.1'] });
  });
  after(async () => {
    for (const s of servers) s.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    removeTempDirs();
  });

  it('takes a 503 out at once, but an unanswered probe only after three in a row', async () => {
    const a = await node('ready');
    const b = await node('ready');
    const { rotation } = rotationOf(() => [
      { name: 'a', httpPort: a.port },
      { name: 'b', httpPort: b.port },
    ]);
    await rotation.probe();
    assert.deepEqual(rotation.current(), ['a', 'b']);
    b.behaviour = 'unready';
    await rotation.probe();
    assert.deepEqual(rotation.current(), ['a'], 'a node saying it is not ready leaves at once');
    a.behaviour = 'hang';
    await rotation.probe();
    await rotation.probe();
    assert.deepEqual(rotation.current(), ['a'], 'two slow answers of the only ready node keep it');
    a.behaviour = 'ready';
    await rotation.probe();
    a.behaviour = 'hang';
    await rotation.probe();
    await rotation.probe();
    assert.deepEqual(rotation.current(), ['a'], 'an answer in between starts the count again');
    await rotation.probe();
    assert.deepEqual(rotation.current(), [], 'the third unanswered probe in a row takes it out');
    await rotation.stop();
  });

  it('never lets in a node that has not answered 200, and hands the balancer a node restarted on other ports', async () => {
    const a = await node('ready');
    const silent = await node('hang');
    let port = a.port;
    const { rotation, applied } = rotationOf(() => [
      { name: 'a', httpPort: port },
      { name: 'silent', httpPort: silent.port },
    ]);
    await rotation.probe();
    assert.deepEqual(rotation.current(), ['a']);
    const restarted = await node('ready');
    port = restarted.port;
    await rotation.probe();
    assert.deepEqual(rotation.current(), ['a']);
    assert.deepEqual(applied.at(-1), [{ httpPort: restarted.port }], 'the new port reaches the balancer');
    assert.equal(applied.length, 2);
    await rotation.stop();
  });
});
