// Check all / uncheck all without a round trip; without JavaScript the same buttons submit the form.
document.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-check], button[data-uncheck]');
  if (!button) return;
  event.preventDefault();
  const table = button.dataset.check || button.dataset.uncheck;
  const checked = button.dataset.check !== undefined;
  for (const box of document.querySelectorAll('input[name="columns"]')) {
    if (box.dataset.table === table) box.checked = checked;
  }
});
