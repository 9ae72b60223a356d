// erth-sync/vue: composables over an open ErthDb (vue.d.ts has the types and
// docs). `vue` is a peer dependency (3.3 or later).

import { getCurrentScope, inject, onScopeDispose, provide, shallowRef, toValue, watch } from "vue";
import { ErrorCode, ErthError } from "./errors.js";
import { liveQuery, liveStatus, queryKey } from "./live.js";

const KEY = Symbol("erth-sync");

export function provideErth(db) {
  provide(KEY, db);
}

export function createErth(db) {
  return { install: (app) => app.provide(KEY, db) };
}

export function useErth() {
  const db = inject(KEY, null);
  if (db === null) {
    throw new ErthError(
      ErrorCode.InvalidInput,
      "erth-sync/vue composables need app.use(createErth(db)) or provideErth(db) in a parent's setup",
    );
  }
  return db;
}

/** Stops `stop` when the calling component or effect scope ends. */
function whenDisposed(stop) {
  if (getCurrentScope()) onScopeDispose(stop);
}

export function useQuery(sql, params) {
  const db = useErth();
  const data = shallowRef([]);
  const isLoading = shallowRef(true);
  const error = shallowRef(null);
  let stop = null;
  const restart = () => {
    stop?.();
    const [text, values] = [toValue(sql), toValue(params) ?? []];
    isLoading.value = true;
    stop = liveQuery(db, text, values, (state) => {
      data.value = state.data;
      isLoading.value = state.isLoading;
      error.value = state.error;
    });
  };
  // The statement and parameters may be refs or getters: a new value restarts the query.
  const stopWatching = watch(() => queryKey(toValue(sql), toValue(params) ?? []), restart, { immediate: true });
  whenDisposed(() => {
    stopWatching();
    stop?.();
  });
  return { data, isLoading, error };
}

export function useStatus() {
  const db = useErth();
  const status = shallowRef(null);
  whenDisposed(liveStatus(db, (value) => (status.value = value)));
  return status;
}
