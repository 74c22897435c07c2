// A connector run's page follows the run without reloading: it asks the run's progress JSON
// every second and writes the counts and the phase in place. Once the run has ended, one reload
// shows the final page (counts from the run history, the rows it rejected). Without JavaScript
// the page reloads itself instead (a refresh in <noscript>).
const section = document.querySelector('[data-progress-url]');
const url = section?.dataset.progressUrl;
if (url) {
  const numbers = new Intl.NumberFormat(document.documentElement.lang === 'ar' ? 'ar-EG' : 'en');
  const POLL_MS = 1000;
  const show = (progress) => {
    for (const field of section.querySelectorAll('[data-field]')) {
      const value = progress[field.dataset.field];
      if (value === undefined || value === null) continue;
      const text = field.hasAttribute('data-number') ? numbers.format(value) : String(value);
      if (field.textContent !== text) field.textContent = text;
    }
  };
  const poll = async () => {
    let progress;
    try {
      const res = await fetch(url, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
      if (!res.ok || !(res.headers.get('content-type') || '').includes('json'))
        throw new Error(String(res.status));
      progress = await res.json();
    } catch {
      // Signed out, or the hub restarted: the page itself says what happened.
      window.location.reload();
      return;
    }
    show(progress);
    if (progress.finished) window.location.reload();
    else setTimeout(poll, POLL_MS);
  };
  setTimeout(poll, POLL_MS / 2);
}
