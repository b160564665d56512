import { defineConfig } from "vite";

// The console is served by the daemon under a strict Content-Security-Policy
// (no inline scripts or styles), so everything ships as files: no inlined
// assets, no inline module-preload polyfill.
export default defineConfig({
  base: "/ui/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: process.env.TIDEMARK_CONSOLE_OUT ?? "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: "es2022",
  },
});
