/** The detector corpus: what data protection must find, and look-alikes it must leave alone. */

// [label the text must be protected as, text]: the sensitive part is the whole text after the prefix.
export const POSITIVES: ReadonlyArray<readonly [string, string]> = [
  ['email', 'bob.smith+tag@example.co.uk'],
  ['email', 'ALICE_99@mail.example.org'],
  ['phone', '+1 415 555 2671'],
  ['phone', '(415) 555-2671'],
  ['phone', '415-555-2671'],
  ['phone', '415.555.2671'],
  ['phone', '+44 20 7946 0958'],
  ['phone', '020 7946 0958'],
  ['phone', '+4915123456789'],
  ['phone', '+33 1 23 45 67 89'],
  ['card', '4111 1111 1111 1111'],
  ['card', '4111-1111-1111-1111'],
  ['card', '5500000000000004'],
  ['card', '378282246310005'],
  ['card', '6011111111111117'],
  ['iban', 'DE89370400440532013000'],
  ['iban', 'GB82 WEST 1234 5698 7654 32'],
  ['iban', 'NL91ABNA0417164300'],
  ['iban', 'FR1420041010050500013M02606'],
  ['ssn', '123-45-6789'],
  ['ssn', '078 05 1120'],
  ['ip', '10.1.2.3'],
  ['ip', '192.168.100.254'],
  ['ip', 'fe80::1ff:fe23:4567:890a'],
  ['ip', '2001:db8::8a2e:370:7334'],
  ['jwt', 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c'],
  ['bearer', 'abcdefghijklmnop0123'],
  ['anthropic_key', `sk-ant-api03-${'x'.repeat(93)}AA`],
  ['openai_key', `sk-proj-${'A1b2'.repeat(12)}`],
  ['openai_key', `sk-${'a'.repeat(20)}T3BlbkFJ${'b'.repeat(20)}`],
  ['aws_access_key', 'AKIAIOSFODNN7EXAMPLE'],
  ['aws_access_key', 'ASIAY34FZKBOKMUTVV7A'],
  ['github_token', `ghp_${'a1B2c3D4e5'.repeat(3)}123456`],
  ['github_token', `gho_${'Z'.repeat(36)}`],
  ['github_token', `github_pat_11ABCDEFG0${'x'.repeat(72)}`],
  ['slack_token', 'xoxb-123456789012-1234567890123-abcdefghijklmnop'],
  ['slack_token', 'xoxp-123456789012-abcdefghij'],
  ['google_api_key', `AIza${'Sy'.repeat(17)}A`],
  ['private_key', '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabcdef==\n-----END RSA PRIVATE KEY-----'],
  ['private_key', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----'],
];

// Values that look like something sensitive and are not: they must survive byte for byte.
export const NEGATIVES: readonly string[] = [
  '2fd4e1c67a2d28fced849ee1bb76e7391b93eb12', // git SHA-1
  'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3c4c5f3b7e1d2a3b4c5d6e7f8', // SHA-256
  '123e4567-e89b-12d3-a456-426614174000', // UUID
  '4155552671', // a 10-digit id (a valid US number, written as an id)
  '1234567890',
  '1700000000123', // epoch milliseconds
  '2024-01-15T10:30:00Z',
  '2024-01-15 10:30:00',
  '15/01/2024',
  '10:30:00',
  'order 10482135',
  'ORD-2024-555-1234',
  'INV-000123456789',
  'version 1.2.3',
  'v10.4.0-rc.1',
  'node 24.21.0',
  '4111111111111112', // Luhn-invalid
  '4111 1111 1111 1112',
  '1234567812345670', // Luhn-valid, no card network starts with 1 and has 16 digits
  '9999999999999995', // Luhn-valid, no network starts with 9
  '3.14159265358979', // a decimal
  'DE89370400440532013001', // IBAN with a wrong checksum
  'XX00123456789012345',
  '666-45-6789', // never-issued SSN areas and groups
  '900-12-3456',
  '123-00-4567',
  '123456789', // nine bare digits: an id far more often than an SSN
  'icon@2x.png',
  'lodash@4.17.21',
  '@types/node',
  'user@localhost',
  'sk-short',
  'AKIA1234', // too short
  'ghp_short',
  'eyJhbGciOiJIUzI1NiJ9', // one base64 segment, not a token
  'the bearer of bad news',
  '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----',
  'price 1,234,567.89 USD',
  'call me maybe at 5 pm',
  'ratio 555-1234-5678-9012-34',
];
