import { Composer, CST, Document, isMap, LineCounter, Parser, type ToStringOptions } from 'yaml';
import { SidecarError } from '../errors/index.ts';
import { eolOf, printEdited, snapshot } from './source.ts';
import type { Path } from './where.ts';

/**
 * A YAML stream split into its documents, each with the exact text it came from, so that a
 * document nothing touched is written back byte for byte, and a touched one is its text with
 * only the edits spliced in (source.ts).
 */
export interface Segment {
  doc: Document.Parsed;
  /** The source text of this document, with the comments and markers before it. */
  original: string;
  changed: boolean;
  /** Removed from the output (a ConfigMap that inject generated, on uninject). */
  dropped: boolean;
  /** With `dropped`: text that was added before this document when it was appended (a line break), taken out with it. */
  joined?: string | undefined;
}

export interface Stream {
  source: string;
  segments: Segment[];
  /** Text after the last document that belongs to none (only when there is no document). */
  rest: string;
  /** 1-based line of an offset in the input. */
  lineOf(offset: number): number;
}

export function parseStream(text: string, source: string): Stream {
  const lines = new LineCounter();
  const tokens = [...new Parser(lines.addNewLine).parse(text)];
  // Comments before a document belong to it, a `...` after it too: the grouping the
  // composer uses when it attaches those comments to documents.
  const groups: CST.Token[][] = [];
  let pending: CST.Token[] = [];
  for (const token of tokens) {
    if (token.type === 'document') {
      groups.push([...pending, token]);
      pending = [];
    } else if (token.type === 'doc-end' && pending.length === 0 && groups.length > 0) {
      groups.at(-1)!.push(token);
    } else {
      pending.push(token);
    }
  }
  if (groups.length > 0) groups.at(-1)!.push(...pending);
  const docs = [...new Composer({ uniqueKeys: true }).compose(tokens)];
  const lineOf = (offset: number) => lines.linePos(offset).line;
  for (const [i, doc] of docs.entries()) {
    const error = doc.errors[0];
    if (error !== undefined) {
      throw new SidecarError('SIDECAR_INJECT_PARSE', {
        message: `${source}:${lineOf(error.pos[0])}: document ${i + 1} is not valid YAML: ${error.message.split('\n')[0]}`,
        details: { document: i + 1, line: lineOf(error.pos[0]) },
      });
    }
  }
  if (docs.length !== groups.length) throw new Error(`internal: ${docs.length} documents composed from ${groups.length} document tokens`);
  const segments = docs.map((doc, i) => {
    const original = groups[i]!.map((t) => CST.stringify(t)).join('');
    const start = (groups[i]![0] as { offset: number }).offset;
    if (text.slice(start, start + original.length) === original) snapshot(doc, text, start, start + original.length, printOptions(original));
    return { doc, original, changed: false, dropped: false };
  });
  return { source, segments, rest: groups.length === 0 ? text : '', lineOf };
}

/** The output text: untouched documents as they were, touched ones with their edits, new ones appended. */
export function printStream(stream: Stream, added: Document[] = []): string {
  let out = '';
  for (const s of stream.segments) {
    if (s.dropped) {
      if (s.joined !== undefined && out.endsWith(s.joined)) out = out.slice(0, out.length - s.joined.length);
      continue;
    }
    out = joinDocs(out, s.changed ? (printEdited(s.doc) ?? s.doc.toString(printOptions(s.original))) : s.original, '\n');
  }
  return appendDocs(out, added, eolOfStream(stream)) + stream.rest;
}

/** What appending documents to `text` puts before the first one besides its `---`: a line break when `text` ends without one. */
export function joinedBefore(text: string, stream: Stream): string | undefined {
  return text === '' || text.endsWith('\n') ? undefined : eolOfStream(stream);
}

const eolOfStream = (stream: Stream): string => (stream.segments[0] === undefined ? '\n' : eolOf(stream.segments[0].doc));

function appendDocs(text: string, added: Document[], eol: string): string {
  let out = text;
  for (const doc of added) {
    if (doc.directives) doc.directives.docStart = true;
    const printed = doc.toString(printOptions(out));
    out = joinDocs(out, eol === '\n' ? printed : printed.replace(/\n/g, eol), eol);
  }
  return out;
}

function joinDocs(before: string, next: string, eol: string): string {
  if (before === '') return next;
  const sep = before.endsWith('\n') ? '' : eol;
  // Every document after the first needs its `---` (the yaml printer writes it when the source had one).
  return before + sep + (/^(#[^\n]*\n|\s*\n)*---/.test(next) ? next : `---${eol}${next}`);
}

/**
 * Print options that match the source's style: its indentation step, no line folding, no
 * padding in flow collections, and sequences indented under their key or not, as the
 * source does (kubectl writes them flush, Helm charts usually indent).
 */
export function printOptions(text: string): ToStringOptions {
  const source = text.replace(/\r\n/g, '\n');
  // A key, then (past blank and comment lines) the first item of its sequence.
  const flush = source.match(/^( *)[^\s#-][^\n]*:[ \t]*\n(?:[ \t]*(?:#[^\n]*)?\n)*\1- /gm)?.length ?? 0;
  const indented = source.match(/^( *)[^\s#-][^\n]*:[ \t]*\n(?:[ \t]*(?:#[^\n]*)?\n)*\1 +- /gm)?.length ?? 0;
  const steps = (source.match(/^ +(?=[^\s#])/gm) ?? []).map((s) => s.length);
  const indent = steps.length === 0 ? 2 : Math.min(...steps);
  return { lineWidth: 0, flowCollectionPadding: false, indentSeq: indented >= flush, indent: indent >= 2 && indent <= 8 ? indent : 2 };
}

/** The line of the deepest node that exists on `path`. */
export function lineIn(doc: Document, lineOf: (offset: number) => number, path: Path): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range) return lineOf(range[0]);
  }
  return undefined;
}

/** True for a document whose top level is a mapping (anything else passes through). */
export const isMapDoc = (doc: Document): boolean => isMap(doc.contents);
