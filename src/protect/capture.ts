/** Data protection for captured text: what comes back is what may be exported. */
export type ProtectText = (text: string) => string;

/**
 * Text captured onto a span (a prompt, a completion, a tool's arguments or result): protected
 * whole, then cut to `maxChars`. A cut first could halve a card number or a key and hide it from
 * the detectors.
 */
export function protectThenCut(protect: ProtectText, maxChars: number): ProtectText {
  return (text) => {
    const safe = protect(text);
    return safe.length > maxChars ? safe.slice(0, maxChars) : safe;
  };
}
