// Typical agent payloads for the protection benchmark: a chat request with messages, tool
// calls and metadata, mostly clean text with a few identifiers, timestamps and ids, and a
// handful of values the default rules protect. Deterministic (no randomness), so runs compare.
const WORDS =
  'the agent should summarise the ticket and propose next steps for the customer who reported a failed export of the quarterly report yesterday'.split(' ');

function sentence(i: number, n: number): string {
  let s = '';
  for (let k = 0; k < n; k++) s += `${WORDS[(i * 7 + k * 3) % WORDS.length]} `;
  return s.trim();
}

/**
 * A JSON body of about `bytes` bytes. `seed` varies the identifiers and phone numbers (so that
 * no cache sees the same value twice); `pii: false` leaves out the values the rules protect.
 */
export function chatBody(bytes: number, seed = 0, pii = true): string {
  const messages: unknown[] = [];
  const body = {
    model: 'claude-sonnet-4-5',
    max_tokens: 1024,
    metadata: { user_id: 'u-48213', session: '3f0c2a9e-7b1d-4c55-9a8e-2d4f6b1c0e77', trace: '2fd4e1c67a2d28fced849ee1bb76e7391b93eb12' },
    messages,
  };
  for (let i = 0; JSON.stringify(body).length < bytes; i++) {
    const n = seed * 1000 + i;
    const extra = pii && i % 5 === 0 ? ` contact jane.doe${n}@example.com or +1 415 555 ${String(n % 10_000).padStart(4, '0')}` : '';
    messages.push({
      role: i % 2 === 0 ? 'user' : 'assistant',
      created_at: `2025-01-${String((i % 28) + 1).padStart(2, '0')}T10:${String(i % 60).padStart(2, '0')}:00Z`,
      content: `${sentence(i, 24)} order 10${String(48213 + i)} at version 4.2.${i}${extra}`,
      tool:
        i % 3 === 0
          ? { name: 'lookup_order', input: { order_id: 100000 + n, api_key: pii && i % 9 === 0 ? 'sk-proj-abcdefghijklmnopqrstuvwx' : undefined } }
          : undefined,
    });
  }
  return JSON.stringify(body);
}
