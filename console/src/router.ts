// Hash routes (`#/workflows/etl`): the daemon serves one index.html and the
// token never appears in a URL.
import { useEffect, useState } from "preact/hooks";

export interface Route {
  path: string[];
  query: URLSearchParams;
}

function parse(): Route {
  const hash = location.hash.replace(/^#/, "") || "/workflows";
  const [p, q] = hash.split("?", 2);
  return {
    path: p.split("/").filter(Boolean).map(decodeURIComponent),
    query: new URLSearchParams(q ?? ""),
  };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const on = () => setRoute(parse());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

export function href(...parts: (string | number)[]): string {
  return "#/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
}

export function go(to: string) {
  location.hash = to.replace(/^#/, "");
}
