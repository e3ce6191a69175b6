import { Document, isCollection, isMap, isPair, isScalar, Pair, Scalar, YAMLMap, YAMLSeq, type Node, type ToStringOptions } from 'yaml';

/*
 * Printing an edited document as its source text with only the edits in it.
 *
 * inject and uninject edit the yaml package's document tree (add a container, remove an env
 * entry, change a targetPort). Printing that tree anew would rewrite every byte of the
 * document in the printer's style ({ app: x } comes back as {app: x}, quotes and comments
 * move), so uninject could not give back the input. Instead, what the tree looked like when
 * parsed is recorded (snapshot), and printing compares: everything that is as it was stays
 * as it was in the source, byte for byte; what was removed is cut out of the source; what was
 * added is printed by the yaml package and spliced in, in the style around it (block or
 * flow, the indentation of its siblings, the source's line endings).
 *
 * Every cut and every insertion follows the same rules, so that removing what an insertion
 * put in gives back the text before it:
 * - block collections: an item is whole lines, from the start of its first line (its `-` or
 *   key) to the end of its last line with its line break; an item added after a sibling
 *   starts on the line after that sibling's last line, one added before a sibling on that
 *   sibling's first line. Where the source ends without a line break, the line break
 *   before the item belongs to it instead.
 * - flow collections: an item added after a sibling is `, item` right after it, one added
 *   first is `item, ` before the next, one added to an empty collection is `item`.
 * - a pair whose null value (`env:`, `env: ~`) is replaced by a collection: the rest of the
 *   key's line is replaced by a line break and the collection's lines. Inject records what
 *   it replaced (see rawNull), and uninject puts exactly that back (markRaw).
 * Content that is put back from a record (markRaw) is spliced in as recorded.
 */

interface SourceInfo {
  text: string;
  /** The document's text is text.slice(start, end). */
  start: number;
  end: number;
  eol: string;
  options: ToStringOptions;
}

const sources = new WeakMap<Document, SourceInfo>();
/** Items of each collection as parsed. */
const itemsAtParse = new WeakMap<YAMLMap | YAMLSeq, unknown[]>();
/** Each pair's value as parsed. */
const valueAtParse = new WeakMap<Pair, unknown>();
/** Each scalar's value as parsed. */
const scalarAtParse = new WeakMap<Scalar, unknown>();
/** Text to splice in for a node instead of printing it, and what the node was when it was recorded. */
const raws = new WeakMap<object, { text: string; fingerprint: string }>();

/** Records a parsed document's source and its tree as parsed; printEdited compares against it. */
export function snapshot(doc: Document, text: string, start: number, end: number, options: ToStringOptions): void {
  sources.set(doc, { text, start, end, eol: text.includes('\r\n') ? '\r\n' : '\n', options });
  const walk = (node: unknown): void => {
    if (isScalar(node)) scalarAtParse.set(node, node.value);
    else if (isCollection(node)) {
      itemsAtParse.set(node, [...node.items]);
      for (const item of node.items) {
        if (isPair(item)) {
          valueAtParse.set(item, item.value);
          walk(item.key);
          walk(item.value);
        } else walk(item);
      }
    }
  };
  walk(doc.contents);
}

/** The line ending of the document's source. */
export const eolOf = (doc: Document): string => sources.get(doc)?.eol ?? '\n';

/**
 * Marks `node` (a scalar, an item or a pair put back by uninject) to be printed as `text`,
 * recorded from the source by inject. Should the node be edited again before printing, it
 * is printed anew instead.
 */
export function markRaw(node: object, text: string): void {
  raws.set(node, { text, fingerprint: fingerprint(node) });
}

function rawOf(node: unknown): string | undefined {
  if (node === null || typeof node !== 'object') return undefined;
  const r = raws.get(node);
  return r !== undefined && r.fingerprint === fingerprint(node) ? r.text : undefined;
}

let unmatched = 0;

function fingerprint(node: object): string {
  try {
    return JSON.stringify(isPair(node) ? [toJS(node.key), toJS(node.value)] : toJS(node));
  } catch {
    // (An alias without its document, say): never the same twice, so never taken as unchanged.
    return `unmatched ${++unmatched}`;
  }
}

const toJS = (node: unknown): unknown => (node !== null && typeof node === 'object' && 'toJSON' in node ? (node as { toJSON(): unknown }).toJSON() : node);

/** The source text of a scalar as parsed (its quotes included), for inject to record. */
export function scalarSource(doc: Document, node: Scalar): string | undefined {
  const raw = rawOf(node);
  if (raw !== undefined) return raw;
  const src = sources.get(doc);
  if (src === undefined) return undefined;
  // Changed since it was parsed (put back by uninject in this run): as it prints now.
  if (node.range == null || !scalarAtParse.has(node) || scalarAtParse.get(node) !== node.value) return scalarText(src, node);
  return src.text.slice(node.range[0], node.range[1]);
}

/**
 * What follows `key:` up to the end of its line when the pair's value is null (`env:`,
 * `env: ~`, `env: null  # none`): inject records it before it puts a collection there, so
 * that uninject can write it back. Undefined when the value is not a null from the source.
 */
export function rawNull(doc: Document, parent: YAMLMap, pair: Pair): string | undefined {
  const raw = rawOf(pair.value);
  if (raw !== undefined) return raw;
  const src = sources.get(doc);
  const v = pair.value;
  if (src === undefined || !(isScalar(v) && v.value === null) || valueAtParse.get(pair) !== v) return undefined;
  const from = colonEnd(src, pair);
  if (from === undefined) return undefined;
  return src.text.slice(from, parent.flow ? v.range![1] : lineEnd(src, from));
}

/**
 * The source text that removing `item` from `parent` cuts out (block: its lines; flow: the
 * item with a separator), for inject to record when it takes something of the user's out
 * that uninject must put back exactly.
 */
export function removedText(doc: Document, parent: YAMLMap | YAMLSeq, item: unknown): string | undefined {
  const raw = rawOf(item);
  if (raw !== undefined) return raw;
  const src = sources.get(doc);
  const before = itemsAtParse.get(parent);
  if (src === undefined || before === undefined || !before.includes(item)) return undefined;
  try {
    const [from, to] = removalSpan(
      src,
      parent,
      before,
      [item],
      before.filter((i) => i !== item),
    );
    const text = src.text.slice(from, to);
    // Block items as whole lines with their line break, wherever they stood.
    return parent.flow || text.endsWith('\n') ? text : text + src.eol;
  } catch {
    return undefined;
  }
}

/**
 * How an item of the source was written, for uninject to put it back exactly: a block
 * item's lines (as removedText gives them), or a flow item's text and the separators
 * around it (from the item before it, to the item after it), since what goes back next to
 * a flow item depends on which of its neighbours are there.
 */
export interface ItemSource {
  raw?: string;
  text?: string;
  before?: string;
  after?: string;
}

/** Flow items put back by putBack: their parts, so that inject records them again as they were. */
const flowParts = new WeakMap<object, { parts: ItemSource; fingerprint: string }>();

/** How `item` of `parent` was written ({} when that is not known: it is then printed anew). */
export function itemSource(doc: Document, parent: YAMLMap | YAMLSeq, item: unknown): ItemSource {
  if (!parent.flow) {
    const raw = removedText(doc, parent, item);
    return raw === undefined ? {} : { raw };
  }
  if (item === null || typeof item !== 'object') return {};
  const marked = flowParts.get(item);
  if (marked !== undefined) return marked.fingerprint === fingerprint(item) ? marked.parts : {};
  const src = sources.get(doc);
  const before = itemsAtParse.get(parent);
  const i = before?.indexOf(item) ?? -1;
  if (src === undefined || before === undefined || i < 0) return {};
  try {
    const start = itemStart(src, parent, item);
    const end = itemEnd(item, true);
    const parts: ItemSource = { text: src.text.slice(start, end) };
    if (i > 0) parts.before = src.text.slice(itemEnd(before[i - 1], true), start);
    if (i < before.length - 1) parts.after = src.text.slice(end, itemStart(src, parent, before[i + 1]));
    return parts;
  } catch {
    return {};
  }
}

/**
 * Marks items just put back into `parent` (all of them in place) to be printed as `sources`
 * say they were written. A run of flow items next to each other gets the separators the
 * printer's insertion rules expect: `, item` after an item that stays, `item, ` before one.
 */
export function markPutBack(parent: YAMLMap | YAMLSeq, nodes: ReadonlyArray<{ node: object; source: ItemSource }>): void {
  if (!parent.flow) {
    for (const { node, source } of nodes) if (source.raw !== undefined) markRaw(node, source.raw);
    return;
  }
  const put = new Map(nodes.map((n) => [n.node as unknown, n.source]));
  const items = parent.items as unknown[];
  for (let i = 0; i < items.length;) {
    if (!put.has(items[i])) {
      i++;
      continue;
    }
    let j = i;
    while (j < items.length && put.has(items[j])) j++;
    const run = items.slice(i, j).map((node) => ({ node: node as object, parts: put.get(node)! }));
    const texts = run.map(({ parts }, k) => {
      if (i > 0) return parts.before === undefined ? undefined : parts.before + parts.text;
      if (j < items.length) return parts.after === undefined ? undefined : parts.text + parts.after;
      if (k === 0) return parts.text;
      return parts.before === undefined ? undefined : parts.before + parts.text;
    });
    if (run.every(({ parts }) => parts.text !== undefined) && texts.every((t) => t !== undefined)) {
      run.forEach(({ node, parts }, k) => {
        markRaw(node, texts[k]!);
        flowParts.set(node, { parts, fingerprint: fingerprint(node) });
      });
    }
    i = j;
  }
}

/** A cut or a replacement of source text. */
interface Edit {
  from: number;
  to: number;
  text: string;
}

/** New text at a place in the source: a block item's lines (its line break is placed last), or flow text as is. */
interface Insert {
  at: number;
  block: boolean;
  body: string;
}

/**
 * The document as its source with only the edits made to its tree; undefined when the
 * document has no recorded source or an edit cannot be placed (the caller then prints the
 * whole document). Cuts and replacements are made first; insertions then go where their
 * place ended up, so that one at the very end of a text without a final line break gets
 * its line break before it, whatever was cut around it.
 */
export function printEdited(doc: Document): string | undefined {
  const src = sources.get(doc);
  if (src === undefined || !isCollection(doc.contents) || !itemsAtParse.has(doc.contents)) return undefined;
  const edits: Edit[] = [];
  const inserts: Insert[] = [];
  try {
    collectEdits(src, doc.contents, edits, inserts);
  } catch {
    return undefined;
  }
  const merged = mergeCuts(src, edits);
  if (merged === undefined) return undefined;
  // Phase 1: cuts and replacements, and where each source position ends up.
  let text1 = '';
  let at = src.start;
  const moves: Array<{ from: number; to: number; shift: number; newFrom: number }> = [];
  for (const e of merged) {
    text1 += src.text.slice(at, e.from);
    moves.push({ from: e.from, to: e.to, newFrom: text1.length, shift: e.text.length - (e.to - e.from) });
    text1 += e.text;
    at = e.to;
  }
  text1 += src.text.slice(at, src.end);
  const place = (p: number): number => {
    let shift = 0;
    for (const m of moves) {
      if (p < m.from) break;
      if (p < m.to) return m.newFrom;
      shift += m.shift;
    }
    return p - src.start + shift;
  };
  // Phase 2: insertions, in the order they were made at each place.
  const placed = inserts.map((ins, order) => ({ ...ins, at: place(ins.at), order })).sort((a, b) => a.at - b.at || a.order - b.order);
  const open = text1 !== '' && !text1.endsWith('\n');
  let out = '';
  let from = 0;
  for (const ins of placed) {
    if (ins.at < from) return undefined;
    out += text1.slice(from, ins.at);
    out += !ins.block ? ins.body : open && ins.at === text1.length ? src.eol + ins.body : ins.body + src.eol;
    from = ins.at;
  }
  return out + text1.slice(from);
}

/**
 * Cuts sorted, with touching or overlapping ones made one; one that reaches the end of a
 * text without a final line break takes the line break before it. Undefined when a
 * replacement overlaps anything.
 */
function mergeCuts(src: SourceInfo, edits: Edit[]): Edit[] | undefined {
  const out: Edit[] = [];
  for (const e of [...edits].sort((a, b) => a.from - b.from)) {
    const last = out.at(-1);
    const cuts = last !== undefined && last.text === '' && e.text === '';
    if (last !== undefined && cuts && e.from <= last.to) last.to = Math.max(last.to, e.to);
    else if (last !== undefined && e.from < last.to) return undefined;
    else out.push({ ...e });
  }
  const end = out.at(-1);
  const open = src.end > src.start && src.text[src.end - 1] !== '\n';
  if (end !== undefined && end.text === '' && open && end.to === src.end && end.from > src.start && src.text[end.from - 1] === '\n') {
    end.from -= src.text[end.from - 2] === '\r' ? 2 : 1;
    const prev = out.at(-2);
    if (prev !== undefined && prev.to > end.from) return undefined;
  }
  return out;
}

function collectEdits(src: SourceInfo, node: unknown, edits: Edit[], inserts: Insert[]): void {
  if (isScalar(node)) {
    if (!scalarAtParse.has(node) || node.range == null) return;
    const raw = rawOf(node);
    if (raw !== undefined || node.value !== scalarAtParse.get(node)) edits.push({ from: node.range[0], to: node.range[1], text: raw ?? scalarText(src, node) });
    return;
  }
  if (!isCollection(node)) return;
  const before = itemsAtParse.get(node);
  if (before === undefined) throw new Error('a collection without a source');
  const after = node.items as unknown[];
  const kept = after.filter((i) => before.includes(i));
  for (let i = 0; i < before.length;) {
    if (after.includes(before[i])) {
      i++;
      continue;
    }
    let j = i;
    while (j < before.length && !after.includes(before[j])) j++;
    const [from, to] = removalSpan(src, node, before, before.slice(i, j), kept);
    edits.push({ from, to, text: '' });
    i = j;
  }
  for (const item of kept) {
    if (isPair(item)) {
      const was = valueAtParse.get(item);
      if (item.value !== was) edits.push(replaceValue(src, node as YAMLMap, item, was));
      else collectEdits(src, item.value, edits, inserts);
    } else collectEdits(src, item, edits, inserts);
  }
  // Added items, in runs between kept ones.
  for (let i = 0; i < after.length;) {
    if (kept.includes(after[i])) {
      i++;
      continue;
    }
    let j = i;
    while (j < after.length && !kept.includes(after[j])) j++;
    inserts.push(...insertion(src, node, before, after.slice(i, j), i > 0 ? after[i - 1] : undefined, j < after.length ? after[j] : undefined));
    i = j;
  }
}

// --- positions in the source

function lineStart(src: SourceInfo, p: number): number {
  return src.text.lastIndexOf('\n', p - 1) + 1;
}

/** The end of p's line, before its line break. */
function lineEnd(src: SourceInfo, p: number): number {
  const n = src.text.indexOf('\n', p);
  const end = n < 0 || n >= src.end ? src.end : n;
  return src.text[end - 1] === '\r' && end > p ? end - 1 : end;
}

/** The start of the line after p's (p itself when it starts a line), or the document's end. */
function nextLine(src: SourceInfo, p: number): number {
  if (p >= src.end) return src.end;
  if (p > 0 && src.text[p - 1] === '\n') return p;
  const n = src.text.indexOf('\n', p);
  return n < 0 || n >= src.end ? src.end : n + 1;
}

function rangeOf(node: unknown): [number, number, number] {
  const r = (node as { range?: [number, number, number] | null } | null)?.range;
  if (r == null) throw new Error('a node without a source range');
  return r;
}

/**
 * Where an item starts: a sequence item's `-`, a pair's key. In a block collection it must
 * be the first thing on its line (not a pair sharing the line of a `- `), else the line
 * rules do not apply and the caller prints the document whole.
 */
function itemStart(src: SourceInfo, parent: YAMLMap | YAMLSeq, item: unknown): number {
  const at = itemColumnAt(src, parent, item);
  if (!parent.flow && src.text.slice(lineStart(src, at), at).trim() !== '') throw new Error('an item that does not start its line');
  return at;
}

/** Where an item's text starts (its `-` or key), wherever it is on its line. */
function itemColumnAt(src: SourceInfo, parent: YAMLMap | YAMLSeq, item: unknown): number {
  const at = isPair(item) ? rangeOf(item.key)[0] : rangeOf(item)[0];
  if (parent.flow || isPair(item)) return at;
  let p = at - 1;
  for (;;) {
    while (p >= src.start && /\s/.test(src.text[p]!)) p--;
    // An anchor or a tag before the item (`- &agent`, `- !!map`) is part of it.
    let q = p;
    while (q >= src.start && !/\s/.test(src.text[q]!)) q--;
    const word = src.text.slice(q + 1, p + 1);
    if (word.length > 1 && (word[0] === '&' || word[0] === '!')) p = q;
    else break;
  }
  if (src.text[p] !== '-') throw new Error('no sequence indicator before an item');
  return p;
}

/** Where an item's text ends (after a trailing comment and line break, for block items). */
function itemEnd(item: unknown, flow: boolean): number {
  if (isPair(item)) {
    // The value the source has (a replaced one has no place in it yet).
    const last = (valueAtParse.has(item) ? valueAtParse.get(item) : item.value) ?? item.key;
    return flow ? rangeOf(last)[1] : rangeOf(last)[2];
  }
  return flow ? rangeOf(item)[1] : rangeOf(item)[2];
}

function colonEnd(src: SourceInfo, pair: Pair): number | undefined {
  const keyEnd = rangeOf(pair.key)[1];
  const colon = src.text.indexOf(':', keyEnd);
  return colon < 0 ? undefined : colon + 1;
}

/** The end of a node's content: its source range without trailing whitespace and line breaks. */
function contentEnd(src: SourceInfo, node: unknown): number {
  let p = rangeOf(node)[2];
  while (p > src.start && /\s/.test(src.text[p - 1]!)) p--;
  return p;
}

// --- removals, insertions, replacements

/** The text removing a run of adjacent items cuts out (the reverse of inserting them there). */
function removalSpan(src: SourceInfo, parent: YAMLMap | YAMLSeq, before: unknown[], run: unknown[], kept: unknown[]): [number, number] {
  const first = run[0]!;
  const last = run.at(-1)!;
  if (parent.flow) {
    const prev = before
      .slice(0, before.indexOf(first))
      .reverse()
      .find((x) => kept.includes(x));
    const next = before.slice(before.indexOf(last) + 1).find((x) => kept.includes(x));
    if (prev !== undefined) return [itemEnd(prev, true), itemEnd(last, true)];
    if (next !== undefined) return [itemStart(src, parent, first), itemStart(src, parent, next)];
    return [itemStart(src, parent, first), itemEnd(last, true)];
  }
  // Comment lines right above an item that is not the first (after the item before it) are its
  // own: they go with it, and come back with it where it is put back after that item.
  const i = before.indexOf(first);
  let from = lineStart(src, itemStart(src, parent, first));
  const floor = i > 0 ? nextLine(src, itemEnd(before[i - 1], false)) : from;
  while (from > floor) {
    const above = lineStart(src, from - 1);
    if (above < floor || !/^[ \t]*#/.test(src.text.slice(above, from))) break;
    from = above;
  }
  return [from, nextLine(src, itemEnd(last, false))];
}

function insertion(src: SourceInfo, parent: YAMLMap | YAMLSeq, before: unknown[], run: unknown[], prev: unknown, next: unknown): Insert[] {
  if (parent.flow) {
    const texts = run.map((item) => ({ raw: rawOf(item), text: flowItemText(src, item) }));
    if (prev !== undefined) return [{ at: itemEnd(prev, true), block: false, body: texts.map((t) => t.raw ?? `, ${t.text}`).join('') }];
    if (next !== undefined) return [{ at: itemStart(src, parent, next), block: false, body: texts.map((t) => t.raw ?? `${t.text}, `).join('') }];
    const open = rangeOf(parent)[0];
    if (src.text[open] !== '[' && src.text[open] !== '{') throw new Error('no bracket where a flow collection starts');
    return [{ at: open + 1, block: false, body: texts.map((t, k) => t.raw ?? (k === 0 ? t.text : `, ${t.text}`)).join('') }];
  }
  const reference = before[0] ?? next ?? prev;
  if (reference === undefined) throw new Error('a block collection with nothing to align to');
  const col = itemColumnAt(src, parent, reference);
  const indent = col - lineStart(src, col);
  const at = prev !== undefined ? nextLine(src, itemEnd(prev, false)) : lineStart(src, itemStart(src, parent, next ?? reference));
  return run.map((item) => {
    const raw = rawOf(item);
    const body = raw !== undefined ? raw.replace(/\r?\n$/, '') : blockItemLines(src, parent, item, indent).join(src.eol);
    return { at, block: true, body };
  });
}

function replaceValue(src: SourceInfo, parent: YAMLMap, pair: Pair, was: unknown): Edit {
  const from = colonEnd(src, pair);
  if (from === undefined) throw new Error('no colon after a key');
  const to = parent.flow ? rangeOf(was)[1] : isCollection(was) ? contentEnd(src, was) : lineEnd(src, from);
  const raw = rawOf(pair.value);
  if (raw !== undefined) return { from, to, text: raw };
  if (parent.flow) return { from, to, text: ` ${flowText(src, pair.value)}` };
  const indent = rangeOf(pair.key)[0] - lineStart(src, rangeOf(pair.key)[0]);
  const lines = blockItemLines(src, parent, new Pair(pair.key, pair.value), indent);
  // `key:` and the value's lines under it, or `key: value` on one line.
  if (lines.length > 1 && lines[0]!.endsWith(':')) return { from, to, text: src.eol + lines.slice(1).join(src.eol) };
  return { from, to, text: lines[0]!.slice(indent + printed(src, pair.key).length + 1) };
}

// --- printing new content with the yaml package, in the source's style

function printed(src: SourceInfo, node: unknown): string {
  const doc = new Document(null);
  doc.contents = node as Node;
  return doc.toString(src.options).replace(/\n$/, '');
}

function scalarText(src: SourceInfo, node: Scalar): string {
  const copy = new Scalar(node.value);
  copy.type = node.type;
  return printed(src, copy);
}

/** A block item (or pair) as lines at `indent`, in the source's indentation style. */
function blockItemLines(src: SourceInfo, parent: YAMLMap | YAMLSeq, item: unknown, indent: number): string[] {
  const holder = isMap(parent) ? new YAMLMap() : new YAMLSeq();
  holder.items = [item as never];
  const pad = ' '.repeat(indent);
  return printed(src, holder)
    .split('\n')
    .map((line) => (line === '' ? line : pad + line));
}

function flowText(src: SourceInfo, node: unknown): string {
  if (isCollection(node)) {
    const copy = node.clone() as YAMLMap | YAMLSeq;
    copy.flow = true;
    return printed(src, copy);
  }
  return printed(src, node);
}

function flowItemText(src: SourceInfo, item: unknown): string {
  if (isPair(item)) {
    const m = new YAMLMap();
    m.flow = true;
    m.items = [item as Pair<unknown, unknown>];
    return printed(src, m)
      .replace(/^\{\s*/, '')
      .replace(/\s*\}$/, '');
  }
  return flowText(src, item);
}
