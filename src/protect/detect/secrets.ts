import { prefiltered, regexDetector, type Detector } from './types.ts';

// Well-known credential formats (the gitleaks rules, checked against each vendor's docs). Each
// starts with a fixed prefix, so a git SHA, a UUID or any other hex or base64 id never matches:
// there is deliberately no "high entropy string" rule.
const FORMATS: ReadonlyArray<readonly [label: string, source: string]> = [
  ['anthropic_key', 'sk-ant-(?:api|admin|oat|sid)\\d{2}-[A-Za-z0-9_-]{32,}'],
  ['openai_key', 'sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}'],
  ['openai_key', 'sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}'],
  ['openai_key', 'sk-[A-Za-z0-9]{32,}'],
  ['aws_access_key', '(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}'],
  ['github_token', 'gh[pousr]_[A-Za-z0-9]{36,255}'],
  ['github_token', 'github_pat_[A-Za-z0-9_]{40,255}'],
  ['slack_token', 'xox[abposre]-[A-Za-z0-9-]{10,}'],
  ['google_api_key', 'AIza[A-Za-z0-9_-]{35}'],
];
const TOKEN = new RegExp(`(?<![\\w-])(?:${FORMATS.map(([, s], i) => `(?<s${i}>${s})`).join('|')})(?![\\w-])`, 'g');

// Every format's fixed prefix: one quick test before the full expression.
const PREFIXES = /sk-|A(?:KIA|SIA|BIA|CCA|Iza)|gh[pousr]_|github_pat_|xox[abposre]-/;

export const tokenSecretsDetector: Detector = prefiltered(
  PREFIXES,
  regexDetector(
    'secret',
    TOKEN,
    () => true,
    undefined,
    (m) => {
      const groups = m.groups!;
      for (let i = 0; i < FORMATS.length; i++) if (groups[`s${i}`] !== undefined) return FORMATS[i]![0];
      return 'secret';
    },
  ),
);

// A PEM private key block (PKCS#1, PKCS#8, EC, OpenSSH, encrypted); an unterminated block is
// protected to the end of the text, since what follows BEGIN is key material.
const PEM = /-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----[\s\S]*?(?:-----END \1-----|$)/g;

export const pemDetector: Detector = prefiltered(
  '-----BEGIN ',
  regexDetector('private_key', PEM, () => true),
);
