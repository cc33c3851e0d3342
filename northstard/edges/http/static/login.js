// northstard sign-in page: the form works without this; it focuses the field,
// hides a stale error while typing, and stops a double submit.

const form = document.querySelector('[data-testid="login-form"]');
const input = document.getElementById('token');
const error = document.getElementById('login-error');

input.focus();
input.addEventListener('input', () => { error.hidden = true; });
form.addEventListener('submit', () => {
  input.value = input.value.trim();
  form.querySelector('button').disabled = true;
});
// Back from the dashboard (the page restored from the cache): usable again.
window.addEventListener('pageshow', () => { form.querySelector('button').disabled = false; });
