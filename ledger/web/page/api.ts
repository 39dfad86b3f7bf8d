/**
 * The page's client of the service-engineer API (docs/service-engineer.md): the bearer token kept
 * in sessionStorage (asked for once per browser tab), JSON and text requests that carry it, and
 * the ledger's error body turned into an ApiError the page can show. A 401 forgets the token so
 * the page asks again.
 */
import type { ApiErrorBody } from '../api-types.js';

const TOKEN_KEY = 'packchain.token';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

async function request(path: string): Promise<Response> {
  const token = getToken();
  const res = await fetch(path, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  if (res.ok) return res;
  let code = `HTTP_${res.status}`;
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as Partial<ApiErrorBody>;
    if (typeof body.error?.code === 'string') code = body.error.code;
    if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  if (res.status === 401) clearToken();
  throw new ApiError(res.status, code, message);
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await request(path)).json()) as T;
}

export async function getText(path: string): Promise<{ text: string; filename: string | undefined }> {
  const res = await request(path);
  const cd = res.headers.get('content-disposition') ?? '';
  const m = /filename="([^"]+)"/.exec(cd);
  return { text: await res.text(), filename: m?.[1] };
}

/** Offers `text` as a file download (the API needs the token, so plain links cannot fetch it). */
export function saveFile(filename: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => {
    URL.revokeObjectURL(url);
  }, 10_000);
}
