/**
 * Reads an nginx configuration file into its directives, with nothing but Node (no nginx here):
 * `name args…;` and `name args… { … }`, `#` comments, single- and double-quoted arguments (an
 * empty `""` is an argument). Enough for the load balancer's file; not every corner of nginx's
 * grammar (no variables in block names, no `include` resolution).
 */
export interface Directive {
  name: string;
  args: string[];
  block?: Directive[];
}

function tokens(text: string): string[] {
  const out: string[] = [];
  const pattern = /\s+|#[^\n]*|"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([{};])|([^\s{};"'#]+)/gy;
  let match: RegExpExecArray | null;
  while (pattern.lastIndex < text.length && (match = pattern.exec(text)) !== null) {
    const [, double, single, punct, word] = match;
    if (double !== undefined || single !== undefined) out.push(`"${double ?? single}`);
    else if (punct !== undefined) out.push(punct);
    else if (word !== undefined) out.push(`"${word}`);
  }
  if (pattern.lastIndex < text.length) throw new Error(`load-balancer config: cannot read from "${text.slice(pattern.lastIndex, pattern.lastIndex + 20)}"`);
  return out;
}

/** The directives of a config file; throws on an unclosed block or a directive without `;`. */
export function parseNginx(text: string): Directive[] {
  const list = tokens(text);
  let at = 0;
  const block = (nested: boolean): Directive[] => {
    const directives: Directive[] = [];
    while (at < list.length) {
      if (list[at] === '}') {
        if (!nested) throw new Error('load-balancer config: "}" without a block');
        at++;
        return directives;
      }
      const words: string[] = [];
      while (at < list.length && !['{', '}', ';'].includes(list[at]!)) words.push(list[at++]!.slice(1));
      const end = list[at++];
      const [name, ...args] = words;
      if (name === undefined || (end !== ';' && end !== '{')) throw new Error(`load-balancer config: directive ${name ?? '?'} is not ended by ";"`);
      directives.push(end === '{' ? { name, args, block: block(true) } : { name, args });
    }
    if (nested) throw new Error('load-balancer config: a block is not closed');
    return directives;
  };
  return block(false);
}

/** An nginx time (`90s`, `1m`, `500ms`, `1h`; a bare number is seconds) in ms. */
export function nginxTimeMs(value: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  const rest = value.replace(/(\d+)(ms|s|m|h|d)?/g, (_all, n: string, unit: string | undefined) => {
    total += Number(n) * units[unit ?? 's']!;
    return '';
  });
  if (rest !== '' || value === '') throw new Error(`not an nginx time: ${value}`);
  return total;
}
