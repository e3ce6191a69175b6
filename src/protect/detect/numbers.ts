import { isValidIBAN } from 'ibantools';
import { regexDetector, type Detector } from './types.ts';

/** Luhn (ISO/IEC 7812-1) over a string of digits. */
export function luhn(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

// Issuer ranges of the card networks (first digits -> allowed lengths). A Luhn check alone
// passes one random number in ten, so an epoch in milliseconds or an order number would be
// a card one time in ten; no network issues numbers starting with 0, 7 or 9, and each has
// its lengths. [low, high] compare the first `low.length` digits.
const NETWORKS: ReadonlyArray<readonly [string, string, readonly number[]]> = [
  ['4', '4', [13, 16, 19]], // Visa
  ['51', '55', [16]], // Mastercard
  ['2221', '2720', [16]], // Mastercard 2-series
  ['34', '34', [15]], // American Express
  ['37', '37', [15]],
  ['300', '305', [14, 16, 17, 18, 19]], // Diners Club
  ['36', '36', [14, 15, 16, 17, 18, 19]],
  ['38', '39', [16, 17, 18, 19]],
  ['3528', '3589', [16, 17, 18, 19]], // JCB
  ['6011', '6011', [16, 17, 18, 19]], // Discover
  ['644', '649', [16, 17, 18, 19]],
  ['65', '65', [16, 17, 18, 19]],
  ['62', '62', [16, 17, 18, 19]], // UnionPay
  ['2200', '2204', [16, 17, 18, 19]], // Mir
  ['50', '50', [13, 16, 17, 18, 19]], // Maestro
  ['56', '69', [13, 16, 17, 18, 19]],
  ['60', '60', [16]], // RuPay
  ['81', '82', [16]],
  ['1', '1', [15]], // UATP
];

export function isCardNumber(digits: string): boolean {
  if (digits.length < 13 || digits.length > 19) return false;
  let network = false;
  for (const [low, high, lengths] of NETWORKS) {
    const head = digits.slice(0, low.length);
    if (head >= low && head <= high && lengths.includes(digits.length)) {
      network = true;
      break;
    }
  }
  return network && luhn(digits);
}

// 13-19 digits, optionally grouped by one kind of separator, not part of a longer token or a decimal.
const CARD = /(?<![\w.+-])\d(?:[ -]?\d){12,18}(?![\w-]|\.\d)/g;
const NON_DIGIT = /\D/g;

export const cardDetector: Detector = regexDetector(
  'card',
  CARD,
  (s) => s.digits >= 13,
  (m) => {
    const text = m[0];
    const separators = new Set(text.replace(/\d/g, ''));
    return separators.size <= 1 && isCardNumber(text.replace(NON_DIGIT, ''));
  },
);

// Electronic format (DE89370400440532013000) or print format in groups of four.
const IBAN = /(?<![\w-])[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)(?![\w-])/g;

export const ibanDetector: Detector = regexDetector(
  'iban',
  IBAN,
  (s) => s.digits >= 6,
  (m) => {
    // A print-format match may have taken a following upper-case word as a group: drop groups until valid.
    let text = m[0];
    while (text.length >= 15) {
      if (isValidIBAN(text.replace(/ /g, ''))) return [m.index, m.index + text.length];
      const space = text.lastIndexOf(' ');
      if (space === -1) break;
      text = text.slice(0, space);
    }
    return false;
  },
);

// Dashes or spaces, the same twice: 123-45-6789. Nine bare digits are an id far more often.
const SSN = /(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])/g;

export const ssnDetector: Detector = regexDetector(
  'ssn',
  SSN,
  (s) => s.digits >= 9,
  // SSA: area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
  (m) => m[1] !== '000' && m[1] !== '666' && m[1]![0] !== '9' && m[3] !== '00' && m[4] !== '0000',
);
