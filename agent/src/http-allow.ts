import { BlockList, isIP } from 'node:net';
import { z } from 'zod';

/**
 * One entry of HTTP_ALLOW: an internal target that HTTP_GET_JSON may reach although it is
 * loopback or private. A CIDR allows every address in it (any port); a host (a name or an IP
 * literal) allows that URL host, and with a port only that port. Cloud metadata and link-local
 * addresses stay refused whatever is listed (ssrf-guard.ts checks them first).
 */
export type AllowEntry =
  | { kind: 'cidr'; network: string; prefix: number; family: 'ipv4' | 'ipv6'; text: string }
  | { kind: 'host'; host: string; port: number | undefined; text: string };

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** Lower case, no trailing dot, no IPv6 brackets: the form URL hosts are compared in. */
export function normalHost(host: string): string {
  const bare = (host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host).toLowerCase();
  // One spelling per IPv6 address (0:0::1 is ::1), as URLs print them.
  if (isIP(bare) === 6 && URL.canParse(`http://[${bare}]/`)) return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  return bare.replace(/\.$/, '');
}

/** Parses one entry; a string is the reason it is not one. */
export function parseAllowEntry(raw: string): AllowEntry | string {
  const text = raw.trim();
  const slash = text.indexOf('/');
  if (slash !== -1) {
    const network = text.slice(0, slash);
    const prefixText = text.slice(slash + 1);
    const version = isIP(network);
    const max = version === 4 ? 32 : 128;
    const prefix = Number(prefixText);
    if (version === 0) return `"${text}": ${network} is not an IP address`;
    if (!/^\d{1,3}$/.test(prefixText) || prefix > max) return `"${text}": the prefix must be 0…${max}`;
    return { kind: 'cidr', network, prefix, family: version === 4 ? 'ipv4' : 'ipv6', text };
  }
  // [v6]:port, v6 alone, host:port, host alone.
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  let host: string;
  let portText: string | undefined;
  if (bracketed) [, host = '', portText] = bracketed;
  else if (isIP(text) === 6) host = text;
  else {
    const colon = text.lastIndexOf(':');
    host = colon === -1 ? text : text.slice(0, colon);
    portText = colon === -1 ? undefined : text.slice(colon + 1);
  }
  host = normalHost(host);
  if (bracketed && isIP(host) !== 6) return `"${text}": only an IPv6 address goes in brackets`;
  if (isIP(host) === 0 && !HOSTNAME.test(host)) return `"${text}": not a host name, IP address, host:port or CIDR`;
  if (portText === undefined) return { kind: 'host', host, port: undefined, text };
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65_535) return `"${text}": the port must be 1…65535`;
  return { kind: 'host', host, port, text };
}

/** HTTP_ALLOW: comma-separated entries; empty items (a trailing comma) are ignored. */
export const HttpAllow = z.string().transform((value, ctx): AllowEntry[] => {
  const entries: AllowEntry[] = [];
  for (const item of value.split(',')) {
    if (item.trim() === '') continue;
    const entry = parseAllowEntry(item);
    if (typeof entry === 'string') ctx.addIssue({ code: 'custom', message: entry });
    else entries.push(entry);
  }
  return entries;
});

/** The destination of a connection, as the URL named it. */
export interface Destination {
  host: string;
  /** Unknown while resolving the name (the DNS lookup does not see the port). */
  port: number | undefined;
}

export class AllowList {
  private readonly networks = new BlockList();
  private readonly hosts: Array<Extract<AllowEntry, { kind: 'host' }>>;

  constructor(readonly entries: readonly AllowEntry[]) {
    this.hosts = [];
    for (const entry of entries) {
      if (entry.kind === 'cidr') this.networks.addSubnet(entry.network, entry.prefix, entry.family);
      else this.hosts.push(entry);
    }
  }

  /**
   * Whether a connection to `address` for `destination` is let through. A host entry matches the
   * URL's host (so an allowed name may resolve to any private address), or the address itself
   * when the entry is an IP literal. With the port still unknown, an entry with a port matches:
   * the check on the connected socket, which knows the port, decides.
   */
  allows(address: string, destination: Destination | undefined): boolean {
    if (this.networks.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6')) return true;
    const host = destination && normalHost(destination.host);
    const bare = normalHost(address);
    return this.hosts.some(
      (entry) =>
        (entry.host === host || entry.host === bare) &&
        (entry.port === undefined || destination?.port === undefined || entry.port === destination.port),
    );
  }
}
