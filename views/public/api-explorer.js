'use strict';
// Fetches a token with the client's own credentials, then its OpenAPI document, and lists
// the endpoints it may call. Nothing is stored: the token lives only in this page.
(function () {
  const form = document.getElementById('api-login');
  const errorBox = document.getElementById('api-error');
  const pathsBox = document.getElementById('api-paths');

  function text(tag, value) {
    const el = document.createElement(tag);
    el.textContent = value;
    return el;
  }

  function render(doc) {
    pathsBox.replaceChildren(text('h2', doc.info.title));
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const section = document.createElement('article');
        section.append(text('h3', method.toUpperCase() + ' ' + path), text('p', op.summary || ''));
        const details = document.createElement('details');
        details.append(text('summary', 'schema'), text('pre', JSON.stringify(op, null, 2)));
        section.append(details);
        pathsBox.append(section);
      }
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errorBox.textContent = '';
    const data = new FormData(form);
    const tokenResponse = await fetch('/api/v1/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        grant_type: 'client_credentials',
        client_id: data.get('client_id'),
        client_secret: data.get('client_secret'),
      }),
    });
    const token = await tokenResponse.json();
    if (!tokenResponse.ok) {
      errorBox.textContent = token.error ? token.error.message : 'token request failed';
      return;
    }
    const docResponse = await fetch('/api/v1/openapi.json', {
      headers: { authorization: 'Bearer ' + token.access_token },
    });
    const doc = await docResponse.json();
    if (!docResponse.ok) errorBox.textContent = doc.error ? doc.error.message : 'request failed';
    else render(doc);
  });
})();
