import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP, type LookupFunction, type Socket } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { AllowList, normalHost, type AllowEntry, type Destination } from './http-allow.js';
import { embeddedIPv4 } from './ipv6.js';

type Rule = [network: string, prefix: number, family: 'ipv4' | 'ipv6'];

/**
 * Never reachable from a command, whatever HTTP_BLOCK_PRIVATE and HTTP_ALLOW say: link-local
 * networks and the cloud metadata services that live in and beside them (AWS 169.254.169.254
 * and fd00:ec2::254, Alibaba 100.100.100.200), which hand out the host's credentials.
 */
const LINK_LOCAL: Rule[] = [
  ['169.254.0.0', 16, 'ipv4'],
  ['fe80::', 10, 'ipv6'],
];
const METADATA: Rule[] = [
  ['100.100.100.200', 32, 'ipv4'],
  ['fd00:ec2::254', 128, 'ipv6'],
];

/** Refused by default (HTTP_BLOCK_PRIVATE=true): this host, its private networks and its neighbours'. */
const PRIVATE: Rule[] = [
  ['0.0.0.0', 8, 'ipv4'], // "this network"; 0.0.0.0 reaches the local host on Linux
  ['127.0.0.0', 8, 'ipv4'],
  ['10.0.0.0', 8, 'ipv4'],
  ['172.16.0.0', 12, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'], // carrier-grade NAT
  ['::', 128, 'ipv6'],
  ['::1', 128, 'ipv6'],
  ['fc00::', 7, 'ipv6'], // unique local
  ['fec0::', 10, 'ipv6'], // site-local (deprecated, still routable in some networks)
  ['64:ff9b:1::', 48, 'ipv6'], // local-use NAT64 (RFC 8215): translates into the local network
];

/** The connection went, or would go, to an address that commands may not reach. Not retryable. */
export class AddressRefused extends Error {
  readonly code = 'ERR_ADDRESS_REFUSED';
  constructor(address: string, host: string, why: string) {
    // Said to whoever submitted the command, who may be the operator trying a local target.
    const hint = why === 'loopback or private' ? ' (the agent allows it with HTTP_ALLOW or HTTP_BLOCK_PRIVATE=false)' : '';
    super(`refused: ${host === address ? address : `${host} (${address})`} is a ${why} address${hint}`);
    this.name = 'AddressRefused';
  }
}

export interface SsrfGuardOptions {
  /** HTTP_BLOCK_PRIVATE: refuse loopback, private, CGNAT and unique-local addresses. */
  blockPrivate: boolean;
  /** HTTP_ALLOW: private targets let through anyway (never link-local or metadata ones). */
  allow?: readonly AllowEntry[];
}

export class SsrfGuard {
  private readonly linkLocal = blockList(LINK_LOCAL);
  private readonly metadata = blockList(METADATA);
  private readonly private = blockList(PRIVATE);
  private readonly allowList: AllowList;
  readonly blockPrivate: boolean;

  constructor({ blockPrivate, allow = [] }: SsrfGuardOptions) {
    this.blockPrivate = blockPrivate;
    this.allowList = new AllowList(allow);
  }

  /**
   * Why `address` (an IP literal) is refused, or undefined when it is allowed. An IPv6 address
   * that carries an IPv4 one (mapped, NAT64, 6to4, …) reaches that IPv4 host, so both are judged.
   * `destination` is the URL's host and port, for HTTP_ALLOW.
   */
  refusal(address: string, destination?: Destination): string | undefined {
    const bare = address.replace(/%.*$/, ''); // a zone (fe80::1%eth0) says which link, not which host
    const family = isIP(bare);
    if (family === 0) return 'non-IP';
    const candidates: Array<[string, 'ipv4' | 'ipv6']> =
      family === 4 ? [[bare, 'ipv4']] : [[bare, 'ipv6'], ...embeddedIPv4(bare).map((v4): [string, 'ipv4'] => [v4, 'ipv4'])];
    // BlockList also matches IPv4-mapped IPv6 (::ffff:169.254.169.254) against the IPv4 rules.
    if (candidates.some(([a, t]) => this.linkLocal.check(a, t))) return 'link-local';
    if (candidates.some(([a, t]) => this.metadata.check(a, t))) return 'cloud metadata';
    if (!this.blockPrivate || !candidates.some(([a, t]) => this.private.check(a, t))) return undefined;
    return this.allowList.allows(bare, destination) ? undefined : 'loopback or private';
  }

  /** Why an HTTP_ALLOW entry can never take effect (it names an always-refused address), if it cannot. */
  static pointless(entry: AllowEntry): string | undefined {
    const address = entry.kind === 'cidr' ? entry.network : isIP(entry.host) ? entry.host : undefined;
    const why = address === undefined ? undefined : new SsrfGuard({ blockPrivate: false }).refusal(address);
    return why && `"${entry.text}" is a ${why} address, which is always refused`;
  }

  /**
   * A DNS lookup that fails when any address of the name is refused. Node connects to exactly
   * the addresses this returns, so the check and the connection see the same answer: a name that
   * resolves to a public address now and a private one later cannot slip between them.
   */
  readonly lookup: LookupFunction = (hostname, options: LookupOptions, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      for (const { address } of addresses) {
        const why = this.refusal(address, { host: hostname, port: undefined });
        if (why !== undefined) return callback(new AddressRefused(address, hostname, why), '', 0);
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
      callback(null, first.address, first.family);
    });
  };

  /**
   * An undici dispatcher that only connects to allowed addresses. IP literals skip DNS, so they
   * are checked before connecting; and every socket's actual peer address is checked once
   * connected, before a byte of the request is sent, whatever path led there.
   */
  dispatcher(): Agent {
    const connect = buildConnector({ lookup: this.lookup, timeout: 10_000 });
    return new Agent({
      connect: (options, callback) => {
        const host = normalHost(options.hostname);
        const port = Number(options.port) || (options.protocol === 'https:' ? 443 : 80);
        const destination = { host, port };
        const literal = isIP(host) ? host : undefined;
        const early = literal === undefined ? undefined : this.refusal(literal, destination);
        if (literal !== undefined && early !== undefined) {
          return callback(new AddressRefused(literal, literal, early), null);
        }
        connect(options, (err, socket) => {
          if (err !== null) return callback(err, null);
          const peer = (socket as Socket).remoteAddress;
          const why = peer === undefined ? 'unknown' : this.refusal(peer, destination);
          if (why === undefined) return callback(null, socket);
          socket.destroy();
          callback(new AddressRefused(peer ?? '?', options.hostname, why), null);
        });
      },
    });
  }
}

function blockList(rules: Rule[]): BlockList {
  const list = new BlockList();
  for (const [network, prefix, type] of rules) list.addSubnet(network, prefix, type);
  return list;
}
