import { describe, expect, it } from 'vitest';
import { parseEvent, SseSplitter } from '../src/protect/index.ts';
import { MAX_HELD_BYTES, SseFrames } from '../src/egress/sse-frames.ts';
import { createTee } from '../src/egress/tee.ts';
import { createUsageReader } from '../src/egress/usage-reader.ts';

/** Events (whole bytes), their contents, and what is left, for `wire` cut into `chunks`. */
function split(chunks: Buffer[]): { events: string[]; contents: string[]; rest: string | undefined } {
  const s = new SseSplitter();
  const events: string[] = [];
  const contents: string[] = [];
  for (const c of chunks) {
    s.push(c);
    while (s.next()) {
      events.push(s.buffer.toString('utf8', s.start, s.end));
      contents.push(s.buffer.toString('utf8', s.start, s.contentEnd));
    }
  }
  return { events, contents, rest: s.take()?.toString('utf8') };
}

/** Every way to cut `wire` in two, and byte by byte. */
function cuts(wire: Buffer): Buffer[][] {
  const out: Buffer[][] = [[wire], Array.from(wire, (b) => Buffer.from([b]))];
  for (let k = 1; k < wire.length; k++) out.push([wire.subarray(0, k), wire.subarray(k)]);
  return out;
}

describe('SseSplitter', () => {
  it('splits LF, CRLF and CR events alike, however the bytes are cut', () => {
    const wire = Buffer.from('event: a\ndata: 1\n\ndata: 2\r\nid: 7\r\n\r\ndata: 3\r\rdata: 4\n\r\n: note\r\n\rdata: unfinished');
    for (const chunks of cuts(wire)) {
      expect(split(chunks)).toEqual({
        events: ['event: a\ndata: 1\n\n', 'data: 2\r\nid: 7\r\n\r\n', 'data: 3\r\r', 'data: 4\n\r\n', ': note\r\n\r'],
        contents: ['event: a\ndata: 1', 'data: 2\r\nid: 7', 'data: 3', 'data: 4', ': note'],
        rest: 'data: unfinished',
      });
    }
  });

  it('waits on a final CR: it may be the first half of a CRLF', () => {
    const s = new SseSplitter();
    s.push(Buffer.from('data: x\r\r'));
    expect(s.next()).toBe(false);
    s.push(Buffer.from('\ndata: y\n\n'));
    expect([s.next(), s.buffer.toString('utf8', s.start, s.end)]).toEqual([true, 'data: x\r\r\n']);
    expect([s.next(), s.buffer.toString('utf8', s.start, s.end)]).toEqual([true, 'data: y\n\n']);
    expect(s.next()).toBe(false);
  });

  it('makes an empty line after an event an event of its own, without lines', () => {
    for (const chunks of cuts(Buffer.from('\ndata: a\n\n\r\n\ndata: b\n\n'))) {
      expect(split(chunks).events).toEqual(['\n', 'data: a\n\n', '\r\n', '\n', 'data: b\n\n']);
      expect(split(chunks).contents).toEqual(['', 'data: a', '', '', 'data: b']);
    }
  });

  it('keeps a UTF-8 character cut across chunks whole, and the bytes of every event as they came', () => {
    const wire = Buffer.from('data: {"t":"grüße 😀"}\n\n: ☃\n\n');
    for (const chunks of cuts(wire)) {
      const { events, rest } = split(chunks);
      expect(events).toEqual(['data: {"t":"grüße 😀"}\n\n', ': ☃\n\n']);
      expect(Buffer.from(events.join(''))).toEqual(wire);
      expect(rest).toBeUndefined();
    }
  });

  it('keeps a BOM and a stream without a final blank line as bytes; the rest is what never ended', () => {
    const wire = Buffer.from('\ufeffdata: 1\n\ndata: 2\n');
    for (const chunks of cuts(wire)) expect(split(chunks)).toEqual({ events: ['\ufeffdata: 1\n\n'], contents: ['\ufeffdata: 1'], rest: 'data: 2\n' });
  });

  it('holds a long event as the chunks that brought it, however many, and counts it', () => {
    const s = new SseSplitter();
    const line = Buffer.from(`data: ${'x'.repeat(1000)}\n`);
    for (let i = 0; i < 1000; i++) {
      s.push(line);
      expect(s.next()).toBe(false);
    }
    expect(s.held).toBe(line.length * 1000);
    s.push(Buffer.from('\n'));
    expect(s.next()).toBe(true);
    expect(s.end - s.start).toBe(line.length * 1000 + 1);
    expect(s.held).toBe(0);
  });
});

describe('SseSplitter given the text of each chunk', () => {
  /** Events, their contents and fields (read by the splitter when it could, else parseEvent), for chunks given with their text when each byte is a character of it. */
  function splitText(chunks: Buffer[], withText: boolean) {
    const s = new SseSplitter();
    const out: Array<[string, string, unknown]> = [];
    for (const c of chunks) {
      const text = c.toString();
      s.push(c, withText && text.length === c.length ? text : undefined);
      while (s.next()) {
        const content = s.buffer.toString('utf8', s.start, s.contentEnd);
        const fields = s.parsed ? (s.data === undefined ? undefined : { type: s.type, data: s.data }) : parseEvent(content);
        out.push([s.buffer.toString('utf8', s.start, s.end), content, fields]);
      }
    }
    return { out, rest: s.take()?.toString('utf8') };
  }

  it('finds the same events and fields as from the bytes alone, however the bytes are cut', () => {
    const wire = Buffer.concat([
      Buffer.from('event: a\ndata: 1\n\n\ndata\ndata:  two\n: note\nid: 3\nevent\n\ndataX: 1\nevent:b\n\n'),
      Buffer.from([0x64, 0x61, 0x74, 0x61, 0x3a, 0x20, 0xff, 0x0a, 0x0a]),
      Buffer.from('data: 2\r\n\r\ndata: {"t":"grüße"}\n\nevent: c\ndata: last'),
    ]);
    for (const chunks of cuts(wire)) {
      const fromText = splitText(chunks, true);
      expect(fromText).toEqual(splitText(chunks, false));
      expect(fromText.out.map((e) => e[2])).toEqual([
        { type: 'a', data: '1' },
        undefined,
        { type: undefined, data: '\n two' },
        undefined,
        { type: undefined, data: '\ufffd' },
        { type: undefined, data: '2' },
        { type: undefined, data: '{"t":"grüße"}' },
      ]);
    }
  });

  it('goes on from the middle of a line after take()', () => {
    const s = new SseSplitter();
    s.push(Buffer.from('data: 1\n\ndata: cut'));
    expect(s.next()).toBe(true);
    expect(s.next()).toBe(false);
    expect(s.take()?.toString()).toBe('data: cut');
    const rest = Buffer.from('\n\ndata: 2\n\n');
    s.push(rest, rest.toString());
    const events: string[] = [];
    while (s.next()) events.push(s.buffer.toString('utf8', s.start, s.end));
    expect(events).toEqual(['\n\n', 'data: 2\n\n']);
  });
});

describe('parseEvent', () => {
  it('reads event and data as an EventSource does: one space dropped, data lines joined, comments and other fields ignored', () => {
    expect(parseEvent('event: delta\r\ndata:{"a":1}\r\ndata:  two\r\n: comment\r\nid: 3\r\nretry: 10')).toEqual({ type: 'delta', data: '{"a":1}\n two' });
    expect(parseEvent('data\nevent')).toEqual({ type: undefined, data: '' });
    expect(parseEvent(': keep-alive')).toBeUndefined();
    expect(parseEvent('id: 1\nevent: x')).toBeUndefined();
    expect(parseEvent('dataX: 1\nDATA: 2')).toBeUndefined();
    expect(parseEvent('xx data: 1 yy', 3, 10)).toEqual({ type: undefined, data: '1' });
  });
});

describe('SseFrames: the egress hold-back over the splitter', () => {
  it('passes an event longer than MAX_HELD_BYTES on as it comes, and then every byte', () => {
    const f = new SseFrames();
    const big = Buffer.from(`data: ${'x'.repeat(MAX_HELD_BYTES)}`);
    expect(Buffer.concat(f.push(big))).toEqual(big);
    expect(f.passthrough).toBe(true);
    expect(f.push(Buffer.from('\n\ndata: 1\n\n'))).toEqual([Buffer.from('\n\ndata: 1\n\n')]);
    expect(f.rest()).toBeUndefined();
  });
});

describe('the egress tee reads usage through the splitter', () => {
  const anthropic = (usage: number) =>
    `\ufeff: ping\r\nevent: message_start\r\ndata: {"type":"message_start","message":{"id":"m","model":"claude","usage":{"input_tokens":3}}}\r\n\r\n` +
    `event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"grüße 😀"}}\n\n` +
    `event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":${usage}}}`;

  it('through a BOM, comments, mixed line ends, a character cut across chunks and a last event without its blank line', async () => {
    const wire = Buffer.from(anthropic(42));
    for (const chunks of cuts(wire)) {
      const reader = createUsageReader('anthropic.messages', { captureText: true, maxChars: 100, addedUsage: false });
      const problems: string[] = [];
      const tee = createTee({ 'content-type': 'text/event-stream' }, reader, false, (p) => problems.push(p));
      const out = chunks.map((c) => tee.push(c)!);
      await tee.end().read;
      expect(Buffer.concat(out)).toEqual(wire);
      expect([reader.state.responseModel, reader.state.usage?.input, reader.state.usage?.output, reader.state.text, problems]).toEqual([
        'claude',
        3,
        42,
        'grüße 😀',
        [],
      ]);
    }
  });
});
