import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP, type LookupFunction, type Socket } from 'node:net';
import { Agent, buildConnector } from 'undici';

/** Cloud metadata services live here (169.254.169.254): never reachable from a command. */
const LINK_LOCAL: Array<[string, number, 'ipv4' | 'ipv6']> = [
  ['169.254.0.0', 16, 'ipv4'],
  ['fe80::', 10, 'ipv6'],
];

/** Refused too with HTTP_BLOCK_PRIVATE=true: this host, its private networks and its neighbours'. */
const PRIVATE: Array<[string, number, 'ipv4' | 'ipv6']> = [
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
];

/** The connection went, or would go, to an address that commands may not reach. Not retryable. */
export class AddressRefused extends Error {
  readonly code = 'ERR_ADDRESS_REFUSED';
  constructor(address: string, host: string, why: string) {
    super(`refused: ${host === address ? address : `${host} (${address})`} is a ${why} address`);
    this.name = 'AddressRefused';
  }
}

export class SsrfGuard {
  private readonly linkLocal = blockList(LINK_LOCAL);
  private readonly private = blockList(PRIVATE);

  constructor(readonly blockPrivate: boolean) {}

  /** Why `address` (an IP literal) is refused, or undefined when it is allowed. */
  refusal(address: string): string | undefined {
    const family = isIP(address);
    if (family === 0) return 'non-IP';
    const type = family === 4 ? 'ipv4' : 'ipv6';
    // BlockList also matches IPv4-mapped IPv6 (::ffff:169.254.169.254) against the IPv4 rules.
    if (this.linkLocal.check(address, type)) return 'link-local';
    if (this.blockPrivate && this.private.check(address, type)) return 'loopback or private';
    return undefined;
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
        const why = this.refusal(address);
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
        const literal = isIP(options.hostname) ? options.hostname : undefined;
        const early = literal === undefined ? undefined : this.refusal(literal);
        if (literal !== undefined && early !== undefined) {
          return callback(new AddressRefused(literal, literal, early), null);
        }
        connect(options, (err, socket) => {
          if (err !== null) return callback(err, null);
          const peer = (socket as Socket).remoteAddress;
          const why = peer === undefined ? 'unknown' : this.refusal(peer);
          if (why === undefined) return callback(null, socket);
          socket.destroy();
          callback(new AddressRefused(peer ?? '?', options.hostname, why), null);
        });
      },
    });
  }
}

function blockList(rules: Array<[string, number, 'ipv4' | 'ipv6']>): BlockList {
  const list = new BlockList();
  for (const [network, prefix, type] of rules) list.addSubnet(network, prefix, type);
  return list;
}
