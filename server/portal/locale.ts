import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type Language = 'en' | 'ar';
export type Messages = Record<string, string>;

const LOCALES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../views/locales');
const cache = new Map<Language, Messages>();

export function loadLocale(lang: Language): Messages {
  let messages = cache.get(lang);
  if (messages === undefined) {
    messages = JSON.parse(readFileSync(path.join(LOCALES_DIR, `${lang}.json`), 'utf8')) as Messages;
    cache.set(lang, messages);
  }
  return messages;
}

export function pickLanguage(query: unknown, acceptLanguage: string | undefined): Language {
  if (query === 'ar' || query === 'en') return query;
  return acceptLanguage?.toLowerCase().startsWith('ar') === true ? 'ar' : 'en';
}
