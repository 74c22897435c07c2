import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadLocale } from '../../../server/portal/locale.ts';
import { PROJECT_ROOT } from '../../support/project-root.ts';

const VIEWS = path.join(PROJECT_ROOT, 'views');

function readTemplates(): Array<{ file: string; text: string }> {
  const files: Array<{ file: string; text: string }> = [];
  for (const folder of ['pages', 'partials']) {
    for (const name of readdirSync(path.join(VIEWS, folder))) {
      if (name.endsWith('.ejs'))
        files.push({ file: `${folder}/${name}`, text: readFileSync(path.join(VIEWS, folder, name), 'utf8') });
    }
  }
  return files;
}

describe('Portal languages', () => {
  const en = loadLocale('en');
  const ar = loadLocale('ar');

  it('has every message in both English and Arabic', () => {
    const onlyEnglish = Object.keys(en).filter((k) => !(k in ar));
    const onlyArabic = Object.keys(ar).filter((k) => !(k in en));
    assert.deepEqual({ onlyEnglish, onlyArabic }, { onlyEnglish: [], onlyArabic: [] });
    const empty = Object.entries({ ...en, ...ar }).filter(([, v]) => v.trim() === '');
    assert.deepEqual(empty, []);
  });

  it('knows every message key a template names', () => {
    const missing: string[] = [];
    for (const { file, text } of readTemplates()) {
      for (const match of text.matchAll(/\bt\.([a-z0-9_]+)/g))
        if (!(match[1]! in en)) missing.push(`${file}: ${match[1]}`);
    }
    assert.deepEqual(missing, []);
  });

  it('keeps words out of the portal templates: text between tags (code aside) comes from the locale files', () => {
    const hardCoded: string[] = [];
    for (const { file, text } of readTemplates()) {
      if (
        !file.startsWith('pages/') ||
        ['pages/status-overview.ejs', 'pages/api-explorer.ejs'].includes(file)
      )
        continue;
      const withoutCode = text
        .replace(/<%[\s\S]*?%>/g, '')
        .replace(/<(script|style|svg|pre|code)[\s\S]*?<\/\1>/g, '');
      for (const match of withoutCode.matchAll(/>([^<>]*[A-Za-z\u0600-\u06FF]{2,}[^<>]*)</g))
        hardCoded.push(`${file}: ${match[1]!.trim()}`);
    }
    assert.deepEqual(hardCoded, []);
  });
});
