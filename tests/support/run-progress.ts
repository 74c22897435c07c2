/** A run's progress as the portal's run page polls it (`…/runs/{id}/progress.json`). */
export interface RunProgressAnswer {
  run_id: number;
  connector: string;
  status: string;
  phase: string;
  phase_text: string;
  finished: boolean;
  finished_at: string | null;
  read: number;
  inserted: number;
  rejected: number;
}

/** Where a run stands and its counts: what the tests of a run over the gated registry compare. */
export const standingOf = (p: RunProgressAnswer) => ({
  status: p.status,
  phase: p.phase,
  read: p.read,
  inserted: p.inserted,
  rejected: p.rejected,
});

/** The gated registry's run while it holds its second page, then once it has run to the end. */
export const PLATES_MIDWAY = { status: 'running', phase: 'loading', read: 2, inserted: 1, rejected: 1 };
export const PLATES_DONE = { status: 'succeeded', phase: 'finished', read: 5, inserted: 4, rejected: 1 };
