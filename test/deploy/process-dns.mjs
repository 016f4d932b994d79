// Cluster DNS for a pod that runs as a process (test/deploy/processes.ts), loaded with `node --import`: the
// names in the file MF_POD_HOSTS_FILE names ("address name" lines, what a container of the pod gets as
// /etc/hosts entries) resolve to their addresses; every other name resolves as usual. Node's net, tls, http(s)
// and fetch all resolve through dns.lookup.
import dns from 'node:dns';
import { readFileSync } from 'node:fs';
import process from 'node:process';

const file = process.env.MF_POD_HOSTS_FILE;
const table = new Map(
  (file ? readFileSync(file, 'utf8') : '')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((parts) => parts.length === 2)
    .map(([address, name]) => [name.toLowerCase(), address]),
);

if (table.size) {
  const lookup = dns.lookup;
  dns.lookup = function (host, options, callback) {
    const cb = typeof options === 'function' ? options : callback;
    const opts = typeof options === 'function' ? {} : typeof options === 'number' ? { family: options } : (options ?? {});
    const address = typeof host === 'string' ? table.get(host.toLowerCase()) : undefined;
    if (!address) return lookup.call(this, host, options, callback);
    process.nextTick(() => (opts.all ? cb(null, [{ address, family: 4 }]) : cb(null, address, 4)));
    return {};
  };
  const promisesLookup = dns.promises.lookup;
  dns.promises.lookup = async function (host, options) {
    const address = typeof host === 'string' ? table.get(host.toLowerCase()) : undefined;
    if (!address) return promisesLookup.call(this, host, options);
    return options?.all ? [{ address, family: 4 }] : { address, family: 4 };
  };
}
