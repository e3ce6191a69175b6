import type { SidecarConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import { protectThenCut, type ProtectText } from '../protect/index.ts';
import type { ToolCapture } from './telemetry.ts';

/**
 * mcp.capture: a tool's arguments and result on its span, as JSON, protected whole, then cut.
 * Off unless asked for, and then only through data protection: a tool's arguments carry what the
 * model read from users and documents, and spans go to systems with wider access. Without
 * `protect` (protection.telemetry off) an enabled capture stops the start.
 */
export function createToolCapture(config: SidecarConfig['mcp']['capture'], protect: ProtectText | undefined): ToolCapture | undefined {
  if (!config.arguments && !config.results) return undefined;
  if (protect === undefined) {
    throw new SidecarError('SIDECAR_CONFIG_INVALID', {
      message:
        'mcp.capture.arguments and .results need data protection of telemetry (protection.telemetry.enabled), which is off; turn capture off or protection on',
    });
  }
  const guard = protectThenCut(protect, config.maxChars);
  return {
    arguments: config.arguments,
    results: config.results,
    // An absent value (a call without arguments) is recorded as null.
    text: (value) => guard(JSON.stringify(value) ?? 'null'),
  };
}
