// Owns the local development certificate authority: a long-lived CA that developers trust once,
// and the short-lived server certificate it issues for the hosts mirrorfarm listens on.
import { createPrivateKey, createPublicKey, KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export interface DevCaFiles {
  caCert: string;
  tlsCert: string;
  tlsKey: string;
}

export interface WriteDevCaOptions {
  outDir: string;
  hosts: string[];
  days?: number;
}

const CA_SUBJECT = 'mirrorfarm development CA';
const CA_YEARS = 10;
const DEFAULT_DAYS = 825;
const DAY_MS = 24 * 60 * 60 * 1000;
const RENEW_BEFORE_MS = 30 * DAY_MS;
// Backdating absorbs clock skew between the machine that issues and the machines that verify.
const BACKDATE_MS = 60 * 60 * 1000;

// P-256 rather than P-384 or Ed25519: it is the one curve every TLS stack we care about
// (GnuTLS-backed libcurl in git, OpenSSL, Node) accepts for both certificates and handshakes.
const EC_ALGORITHM: webcrypto.EcKeyGenParams & webcrypto.EcKeyImportParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

x509.cryptoProvider.set(webcrypto);

interface Host {
  kind: 'dns' | 'ip';
  value: string;
}

interface LoadedCa {
  cert: x509.X509Certificate;
  key: CryptoKey;
}

export async function writeDevCa(options: WriteDevCaOptions): Promise<DevCaFiles> {
  const hosts = normalizeHosts(options.hosts);
  const days = options.days ?? DEFAULT_DAYS;
  if (!Number.isFinite(days) || days <= 0) {
    throw new Error(`writeDevCa: days must be a positive number, got ${String(days)}`);
  }

  const outDir = path.resolve(options.outDir);
  await mkdir(outDir, { recursive: true, mode: 0o700 });
  const files = {
    caCert: path.join(outDir, 'ca.crt'),
    caKey: path.join(outDir, 'ca.key'),
    tlsCert: path.join(outDir, 'tls.crt'),
    tlsKey: path.join(outDir, 'tls.key'),
  };

  const now = new Date();
  let ca = await loadCa(files.caCert, files.caKey, now);
  let caIsNew = false;
  if (!ca) {
    ca = await createCa(now);
    caIsNew = true;
    // Key before certificate: a crash in between leaves a certificate-less key, which the next
    // run treats as "no CA" instead of pairing an old certificate with a new key.
    await writeAtomic(files.caKey, await exportPkcs8Pem(ca.key), 0o600);
    await writeAtomic(files.caCert, ca.cert.toString('pem') + '\n', 0o644);
  }

  if (caIsNew || !(await leafIsUsable(files.tlsCert, files.tlsKey, ca, hosts, now))) {
    const leaf = await issueLeaf(ca, hosts, days, now);
    // Same ordering argument as the CA: a new key next to an old certificate fails the
    // key-match check on the next run and gets re-issued, never served half-replaced.
    await writeAtomic(files.tlsKey, await exportPkcs8Pem(leaf.key), 0o600);
    await writeAtomic(files.tlsCert, leaf.cert.toString('pem') + '\n', 0o644);
  }

  return { caCert: files.caCert, tlsCert: files.tlsCert, tlsKey: files.tlsKey };
}

function normalizeHosts(input: string[]): Host[] {
  const seen = new Set<string>();
  const hosts: Host[] = [];
  for (const raw of input) {
    // URL-style "[::1]" is how people write IPv6 hosts; the SAN wants the bare address.
    let value = raw.trim();
    if (value.startsWith('[') && value.endsWith(']')) value = value.slice(1, -1);
    if (value === '') continue;
    const host: Host = isIP(value) ? { kind: 'ip', value: canonicalIp(value) } : { kind: 'dns', value: value.toLowerCase() };
    const key = `${host.kind}:${host.value}`;
    if (seen.has(key)) continue;
    seen.add(key);
    hosts.push(host);
  }
  if (hosts.length === 0) throw new Error('writeDevCa: at least one host is required');
  return hosts;
}

// Certificates and callers may spell the same IPv6 address differently ("::1" vs "0:0::1");
// the WHATWG URL parser gives one canonical spelling to compare on.
function canonicalIp(ip: string): string {
  if (isIP(ip) === 6) return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  return new URL(`http://${ip}/`).hostname;
}

async function loadCa(certPath: string, keyPath: string, now: Date): Promise<LoadedCa | undefined> {
  const certPem = await readIfExists(certPath);
  const keyPem = await readIfExists(keyPath);
  if (certPem === undefined || keyPem === undefined) return undefined;

  const cert = new x509.X509Certificate(certPem);
  // An expired CA already breaks every client that trusts it, so replacing it costs nothing;
  // keeping it would make every issued certificate fail verification.
  if (cert.notAfter.getTime() <= now.getTime()) return undefined;

  if (!keyMatchesCert(keyPem, cert)) {
    // Silently minting a new CA would break clients that trust the old one without telling
    // anyone why, so make the operator choose.
    throw new Error(`writeDevCa: ${keyPath} does not match ${certPath}; remove both to create a new CA`);
  }
  const key = await webcrypto.subtle.importKey('pkcs8', pemToDer(keyPem), EC_ALGORITHM, false, ['sign']);
  return { cert, key };
}

async function createCa(now: Date): Promise<LoadedCa> {
  const keys = await generateKeyPair();
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_YEARS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [CA_SUBJECT] }],
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, key: keys.privateKey };
}

async function issueLeaf(ca: LoadedCa, hosts: Host[], days: number, now: Date): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const keys = await generateKeyPair();
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  // A leaf that outlives its CA would look valid on paper but fail verification once the CA
  // expires, and would hide that from the renewal check.
  const notAfter = new Date(Math.min(now.getTime() + days * DAY_MS, ca.cert.notAfter.getTime()));
  const first = hosts[0];
  if (!first) throw new Error('writeDevCa: at least one host is required');
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [first.value] }],
    issuer: ca.cert.subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, false),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(hosts.map((h) => ({ type: h.kind, value: h.value }))),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
    ],
  });
  return { cert, key: keys.privateKey };
}

async function leafIsUsable(certPath: string, keyPath: string, ca: LoadedCa, hosts: Host[], now: Date): Promise<boolean> {
  const certPem = await readIfExists(certPath);
  const keyPem = await readIfExists(keyPath);
  if (certPem === undefined || keyPem === undefined) return false;

  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(certPem);
  } catch {
    return false;
  }

  // Renew ahead of expiry, but a leaf already running to the CA's own end of life cannot get
  // any longer, and re-issuing it on every start would only churn the file.
  const renewAt = Math.min(now.getTime() + RENEW_BEFORE_MS, ca.cert.notAfter.getTime());
  if (cert.notAfter.getTime() < renewAt) return false;
  if (cert.notBefore.getTime() > now.getTime()) return false;

  // The CA may have been replaced (e.g. it expired) since this leaf was issued.
  if (!(await cert.verify({ publicKey: ca.cert.publicKey, signatureOnly: true }))) return false;
  if (!keyMatchesCert(keyPem, cert)) return false;

  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  if (!san) return false;
  const covered = new Set<string>();
  for (const name of san.names.items) {
    if (name.type === 'dns') covered.add(`dns:${name.value.toLowerCase()}`);
    else if (name.type === 'ip') covered.add(`ip:${canonicalIp(name.value)}`);
  }
  return hosts.every((h) => covered.has(`${h.kind}:${h.value}`));
}

function keyMatchesCert(keyPem: string, cert: x509.X509Certificate): boolean {
  try {
    const spki = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
    return Buffer.from(cert.publicKey.rawData).equals(spki);
  } catch {
    return false;
  }
}

async function generateKeyPair(): Promise<CryptoKeyPair> {
  // Extractable so the private keys can be written out; they never leave this process otherwise.
  return webcrypto.subtle.generateKey(EC_ALGORITHM, true, ['sign', 'verify']);
}

async function exportPkcs8Pem(key: CryptoKey): Promise<string> {
  const pem = KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' });
  return typeof pem === 'string' ? pem : pem.toString('utf8');
}

function pemToDer(pem: string): Buffer {
  return createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
}

// RFC 5280 wants a positive serial of at most 20 octets with enough entropy that two issuances
// never collide; clearing the top bit keeps the DER INTEGER positive without a padding byte.
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

// Write-then-rename so a concurrent reader (the server starting up) never sees a truncated
// PEM, and so key files are 0600 from the moment they exist rather than after a chmod.
async function writeAtomic(file: string, contents: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, contents, { mode, flag: 'wx' });
    // The process umask could have stripped bits from the requested mode.
    await chmod(tmp, mode);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
