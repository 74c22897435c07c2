import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RequestHandler } from 'express';

export type Language = 'en' | 'ar';
export type Messages = Record<string, string>;

export const LANGUAGES: readonly Language[] = ['en', 'ar'];
export const LANGUAGE_COOKIE = 'hub_lang';
const ONE_YEAR_MS = 365 * 86_400_000;

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

const isLanguage = (value: unknown): value is Language => value === 'ar' || value === 'en';

export function pickLanguage(
  query: unknown,
  acceptLanguage: string | undefined,
  remembered?: unknown,
): Language {
  if (isLanguage(query)) return query;
  if (isLanguage(remembered)) return remembered;
  return acceptLanguage?.toLowerCase().startsWith('ar') === true ? 'ar' : 'en';
}

/**
 * `?lang=ar|en` on any portal page switches the language and a cookie remembers it; views get
 * the messages, the direction and formatters for numbers and dates in that language.
 */
export function buildLanguageMiddleware(secureCookie: boolean): RequestHandler {
  return (req, res, next) => {
    const cookies = req.cookies as Record<string, unknown> | undefined;
    const lang = pickLanguage(req.query.lang, req.headers['accept-language'], cookies?.[LANGUAGE_COOKIE]);
    if (isLanguage(req.query.lang) && cookies?.[LANGUAGE_COOKIE] !== lang) {
      res.cookie(LANGUAGE_COOKIE, lang, {
        maxAge: ONE_YEAR_MS,
        httpOnly: true,
        sameSite: 'lax',
        secure: secureCookie || req.secure,
        path: '/',
      });
    }
    const numbers = new Intl.NumberFormat(lang === 'ar' ? 'ar-EG' : 'en');
    const dates = new Intl.DateTimeFormat(lang === 'ar' ? 'ar-EG' : 'en-GB', {
      dateStyle: 'medium',
      timeStyle: 'short',
      timeZone: 'UTC',
    });
    const days = new Intl.DateTimeFormat(lang === 'ar' ? 'ar-EG' : 'en-GB', {
      day: 'numeric',
      month: 'short',
      timeZone: 'UTC',
    });
    Object.assign(res.locals, {
      lang,
      dir: lang === 'ar' ? 'rtl' : 'ltr',
      t: loadLocale(lang),
      otherLang: lang === 'ar' ? 'en' : 'ar',
      formatNumber: (n: unknown) => numbers.format(Number(n ?? 0)),
      formatDate: (iso: unknown) =>
        typeof iso === 'string' && iso !== '' ? dates.format(new Date(iso)) : '',
      formatDay: (iso: string) => days.format(new Date(iso)),
      label: (l: { en: string; ar: string } | undefined, fallback: string) => l?.[lang] || fallback,
      currentPath: req.path,
    });
    next();
  };
}
