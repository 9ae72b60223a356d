// erth-sync/react: a provider and hooks over an open ErthDb (react.d.ts has
// the types and docs). `react` is a peer dependency (18 or later).
//
// Live queries are shared: every component using the same statement and
// parameters on the same database reads one db.watch, which starts at the
// first render that needs it and stops LINGER_MS after the last one using it
// unmounts (so a suspended render, a StrictMode remount or a quick
// navigation back do not run the query again).

import * as React from "react";
import { ErrorCode, ErthError } from "./errors.js";
import { liveQuery, liveStatus, queryKey } from "./live.js";

const { createContext, createElement, useContext, useEffect, useMemo, useState, useSyncExternalStore } = React;

/** How long a live query nobody uses keeps running (ms). */
const LINGER_MS = 5000;

const ErthContext = createContext(null);

export function ErthProvider({ db, children }) {
  return createElement(ErthContext.Provider, { value: db }, children);
}

export function useErth() {
  const db = useContext(ErthContext);
  if (db === null || db === undefined) {
    throw new ErthError(ErrorCode.InvalidInput, "erth-sync/react hooks need an <ErthProvider db={db}> above them");
  }
  return db;
}

/** Live queries by database, then by `queryKey`. */
const shared = new WeakMap();

/** One shared live query: its state, its subscribers, and a Promise of its first state. */
function entryFor(db, sql, params) {
  let queries = shared.get(db);
  if (!queries) shared.set(db, (queries = new Map()));
  const key = queryKey(sql, params);
  const existing = queries.get(key);
  if (existing) return existing;
  const listeners = new Set();
  let stop = null;
  let timer = null;
  let settle;
  const entry = {
    state: { data: [], isLoading: true, error: null },
    ready: new Promise((resolve) => (settle = resolve)),
    get: () => entry.state,
    subscribe(listener) {
      clearTimeout(timer);
      if (!stop) start();
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0) linger();
      };
    },
  };
  const start = () => {
    queries.set(key, entry);
    stop = liveQuery(db, sql, params, (state) => {
      entry.state = state;
      settle();
      for (const listener of [...listeners]) listener();
    });
  };
  const linger = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stop?.();
      stop = null;
      if (queries.get(key) === entry) queries.delete(key);
    }, LINGER_MS);
  };
  start();
  linger(); // stopped unless a mounted component subscribes
  return entry;
}

function useEntry(sql, params) {
  const db = useErth();
  const key = queryKey(sql, params);
  // `params` is read through `key`: a new array with the same values is the same query.
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const entry = useMemo(() => entryFor(db, sql, params), [db, key]);
  return [entry, useSyncExternalStore(entry.subscribe, entry.get, entry.get)];
}

export function useQuery(sql, params) {
  return useEntry(sql, params)[1];
}

export function useSuspenseQuery(sql, params) {
  const [entry, state] = useEntry(sql, params);
  if (state.error) throw state.error;
  if (state.isLoading) {
    if (typeof React.use === "function") React.use(entry.ready);
    throw entry.ready;
  }
  return state.data;
}

export function useStatus() {
  const db = useErth();
  const [status, setStatus] = useState(null);
  useEffect(() => liveStatus(db, setStatus), [db]);
  return status;
}
