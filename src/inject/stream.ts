import { Composer, CST, Document, isMap, LineCounter, Parser, type ToStringOptions } from 'yaml';
import { SidecarError } from '../errors/index.ts';
import type { Path } from './where.ts';

/**
 * A YAML stream split into its documents, each with the exact text it came from, so that a
 * document nothing touched is written back byte for byte, and a touched one is printed by
 * the yaml package (comments, key order and scalar styles kept).
 */
export interface Segment {
  doc: Document.Parsed;
  /** The source text of this document, with the comments and markers before it. */
  original: string;
  changed: boolean;
  /** Removed from the output (a ConfigMap that inject generated, on uninject). */
  dropped: boolean;
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
  return {
    source,
    segments: docs.map((doc, i) => ({ doc, original: groups[i]!.map((t) => CST.stringify(t)).join(''), changed: false, dropped: false })),
    rest: groups.length === 0 ? text : '',
    lineOf,
  };
}

/** The output text: untouched documents as they were, touched ones printed, new ones appended. */
export function printStream(stream: Stream, added: Document[] = []): string {
  let out = '';
  for (const s of stream.segments) {
    if (s.dropped) continue;
    out = joinDocs(out, s.changed ? s.doc.toString(printOptions(s.original)) : s.original);
  }
  for (const doc of added) {
    if (doc.directives) doc.directives.docStart = true;
    out = joinDocs(out, doc.toString(printOptions(out)));
  }
  return out + stream.rest;
}

function joinDocs(before: string, next: string): string {
  if (before === '') return next;
  const sep = before.endsWith('\n') ? '' : '\n';
  // Every document after the first needs its `---` (the yaml printer writes it when the source had one).
  return before + sep + (/^(#[^\n]*\n|\s*\n)*---/.test(next) ? next : `---\n${next}`);
}

/**
 * Print options that match the source's style: its indentation step, no line folding, no
 * padding in flow collections, and sequences indented under their key or not, as the
 * source does (kubectl writes them flush, Helm charts usually indent).
 */
export function printOptions(source: string): ToStringOptions {
  const flush = source.match(/^( *)[^\s#-][^\n]*:[ \t]*\n\1- /gm)?.length ?? 0;
  const indented = source.match(/^( *)[^\s#-][^\n]*:[ \t]*\n\1 +- /gm)?.length ?? 0;
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
