import { isIP } from 'node:net';

/** The 16 bytes of an IPv6 literal (any spelling, a trailing dotted IPv4 included); undefined if it is not one. */
export function ipv6Bytes(address: string): Uint8Array | undefined {
  if (isIP(address) !== 6) return undefined;
  let text = address.replace(/%.*$/, '');
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const front = groups(head);
  const back = tail === undefined ? [] : groups(tail);
  const all = [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

const ipv4At = (bytes: Uint8Array, offset: number, mask = 0): string =>
  Array.from(bytes.subarray(offset, offset + 4), (b) => b ^ mask).join('.');

const zeros = (bytes: Uint8Array, from: number, to: number): boolean => bytes.subarray(from, to).every((b) => b === 0);

/**
 * The IPv4 addresses an IPv6 address leads to, by the standard ways of carrying one:
 * IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d`, IPv4-compatible `::a.b.c.d`,
 * NAT64 `64:ff9b::/96` (a gateway connects to the IPv4 host), 6to4 `2002:AABB:CCDD::/16` and
 * Teredo `2001:0::/32` (its server, and its client stored inverted). Empty for other addresses.
 */
export function embeddedIPv4(address: string): string[] {
  const bytes = ipv6Bytes(address);
  if (!bytes) return [];
  const word = (i: number) => ((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0);
  if (zeros(bytes, 0, 10) && word(5) === 0xffff) return [ipv4At(bytes, 12)]; // mapped
  if (zeros(bytes, 0, 8) && word(4) === 0xffff && word(5) === 0) return [ipv4At(bytes, 12)]; // translated
  if (zeros(bytes, 0, 12)) return [ipv4At(bytes, 12)]; // compatible (:: and ::1 included: 0.0.0.0/8)
  if (word(0) === 0x64 && word(1) === 0xff9b && zeros(bytes, 4, 12)) return [ipv4At(bytes, 12)]; // NAT64
  if (word(0) === 0x2002) return [ipv4At(bytes, 2)]; // 6to4
  if (word(0) === 0x2001 && word(1) === 0) return [ipv4At(bytes, 4), ipv4At(bytes, 12, 0xff)]; // Teredo
  return [];
}
