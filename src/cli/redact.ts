import { Command, Option } from 'commander';
import type { SidecarConfig } from '../config/index.ts';
import { createLogger } from '../log/index.ts';
import { createProtection } from '../protect/index.ts';
import { filterLines, inputError } from './lines.ts';

interface RedactFlags {
  rules: string;
  format: 'auto' | 'json' | 'text';
  stats?: boolean;
}

const PEM_BEGIN = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----/;
const PEM_END = /-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----/;
const PEM_MAX_LINES = 200;

/**
 * `agent-sidecar redact`: stdin -> protected stdout with the configured rules, line by line,
 * so operators can try their rules on samples before turning them on. JSON lines go through
 * field rules and detectors, other lines through the detectors; a PEM key block spanning
 * lines is treated as one text.
 */
export function registerRedactCommand(program: Command, load: (flags: { config?: string }) => Readonly<SidecarConfig>): void {
  program
    .command('redact')
    .description('protect text or JSON lines from stdin with the configured rules, to stdout (to test rules)')
    .addOption(new Option('-c, --config <file>', 'YAML configuration file (protection.rules)').env('SIDECAR_CONFIG'))
    .option('--rules <name>', 'the rule set (protection.rules)', 'default')
    .addOption(
      new Option('--format <format>', 'auto: a line that parses as JSON is JSON, others text; json: every line must be JSON')
        .choices(['auto', 'json', 'text'])
        .default('auto'),
    )
    .option('--stats', 'print how many values were protected, by label, on stderr')
    .action(async (flags: RedactFlags & { config?: string }) => {
      const counts = new Map<string, number>();
      const protection = await createProtection(load(flags), createLogger('warn', process.stderr), {
        observe: flags.stats ? (label) => counts.set(label, (counts.get(label) ?? 0) + 1) : undefined,
      });
      const p = protection.ruleSet(flags.rules);
      let pem: string[] | undefined;
      const text = (line: string): string | undefined => {
        if (pem !== undefined) {
          pem.push(line);
          if (!PEM_END.test(line) && pem.length < PEM_MAX_LINES) return undefined;
          const block = pem.join('\n');
          pem = undefined;
          return p.text(block);
        }
        if (PEM_BEGIN.test(line) && !PEM_END.test(line)) {
          pem = [line];
          return undefined;
        }
        return p.text(line);
      };
      try {
        await filterLines((line) => {
          if (flags.format === 'text') return text(line);
          const head = line.trimStart()[0];
          if (head === '{' || head === '[' || flags.format === 'json') {
            const out = p.json(line);
            if (out !== undefined) return out;
            if (flags.format === 'json') throw inputError('not valid JSON');
          }
          return text(line);
        });
        // An unterminated key block is still key material.
        if (pem !== undefined) process.stdout.write(`${p.text(pem.join('\n'))}\n`);
      } finally {
        if (flags.stats) {
          const summary = [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([label, n]) => `${label}=${n}`);
          process.stderr.write(`protected: ${summary.length === 0 ? 'nothing' : summary.join(' ')}\n`);
        }
      }
    });
}
