// What erth-sync/react and erth-sync/vue share: a live query's state
// ({ data, isLoading, error }) kept current by db.watch, with unchanged rows
// keeping their identity (so a framework re-renders only what changed), and
// the key that tells two queries apart.

/** Whether two values are the same SQL value (bytes compared by content). */
function sameValue(a, b) {
  if (Object.is(a, b)) return true;
  if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array) || a.length !== b.length) return false;
  return a.every((byte, i) => byte === b[i]);
}

function sameRow(a, b) {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && sameValue(a[k], b[k]));
}

/**
 * `next` with each row that equals its earlier version replaced by that
 * earlier object: rows are matched by their `id` column when they have one,
 * else by position. `prev` itself when nothing changed.
 */
export function keepIdentity(prev, next) {
  if (prev.length === 0) return next;
  const byId = new Map();
  for (const row of prev) if (typeof row.id === "string") byId.set(row.id, row);
  let changed = prev.length !== next.length;
  const rows = next.map((row, i) => {
    const old = typeof row.id === "string" && byId.size > 0 ? byId.get(row.id) : prev[i];
    if (old === undefined || !sameRow(old, row)) {
      changed = true;
      return row;
    }
    if (old !== prev[i]) changed = true;
    return old;
  });
  return changed ? rows : prev;
}

/** A text naming a statement and its parameters exactly (a bigint or bytes included). */
export function queryKey(sql, params = []) {
  const plain = (params ?? []).map((v) => {
    if (typeof v === "bigint") return { bigint: String(v) };
    if (v instanceof Uint8Array || v instanceof ArrayBuffer) return { bytes: Array.from(new Uint8Array(v)) };
    return v === undefined ? null : v;
  });
  return JSON.stringify([sql, plain]);
}

/**
 * Runs `db.watch(sql, params)` and calls `onState({ data, isLoading, error })`
 * whenever its state changes (first with `isLoading: true` already given by
 * `initial`). Returns a function that stops it.
 */
export function liveQuery(db, sql, params, onState) {
  let state = { data: [], isLoading: true, error: null };
  const set = (next) => {
    state = next;
    onState(state);
  };
  let stop;
  try {
    stop = db.watch(sql, params ?? [], (rows) => set({ data: keepIdentity(state.data, rows), isLoading: false, error: null }), {
      onError: (error) => set({ data: state.data, isLoading: false, error }),
    });
  } catch (error) {
    // A bad argument (checked at once): reported like a bad query.
    queueMicrotask(() => set({ data: state.data, isLoading: false, error }));
    return () => {};
  }
  return stop;
}

/** Calls `onStatus(status)` now and on every status event of `db`. Returns a function that stops it. */
export function liveStatus(db, onStatus) {
  let live = true;
  db.status().then(
    (status) => live && onStatus(status),
    () => {}, // a closed database: no status to show
  );
  const off = db.subscribe((event) => {
    if (event.type === "status") onStatus(event.status);
  });
  return () => {
    live = false;
    off();
  };
}
