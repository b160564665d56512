import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import { loadSession, saveSession, setUnauthorizedHandler, type Session } from "./api";
import { go, href, useRoute } from "./router";
import { SignIn } from "./pages/signin";
import { Workflows } from "./pages/workflows";
import { WorkflowPage } from "./pages/workflow";
import { Grid } from "./pages/grid";
import { RunPage } from "./pages/run";
import { Backfills } from "./pages/backfills";
import { Launcher } from "./pages/launcher";
import { BackfillPage } from "./pages/backfill";
import { TenantPage } from "./pages/tenant";
import { NotificationsPage } from "./pages/notifications";
import { AdminPage } from "./pages/admin";

function App() {
  const route = useRoute();
  const [session, setSession] = useState<Session | null>(loadSession);
  const [notice, setNotice] = useState<string>();

  useEffect(() => {
    setUnauthorizedHandler((message) => {
      saveSession(null);
      setSession(null);
      setNotice(`Signed out: the server refused the token (${message}).`);
    });
  }, []);

  if (!session) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(s) => {
          saveSession(s);
          setSession(s);
          setNotice(undefined);
          go(s.role === "admin" ? "/admin" : "/workflows");
        }}
      />
    );
  }

  const signOut = () => {
    saveSession(null);
    setSession(null);
    setNotice("Signed out.");
  };
  const [top, a, b] = route.path;
  let page;
  if (session.role === "admin") {
    page = <AdminPage />;
  } else if (top === "workflows" && a && b === "grid") {
    page = <Grid key={a} name={a} />;
  } else if (top === "workflows" && a) {
    page = <WorkflowPage key={a} name={a} />;
  } else if (top === "runs" && a) {
    page = <RunPage key={a} id={Number(a)} />;
  } else if (top === "backfills" && a === "new") {
    page = <Launcher key={route.query.toString()} query={route.query} />;
  } else if (top === "backfills" && a) {
    page = <BackfillPage key={a} id={Number(a)} />;
  } else if (top === "backfills") {
    page = <Backfills />;
  } else if (top === "tenant") {
    page = <TenantPage />;
  } else if (top === "notifications") {
    page = <NotificationsPage />;
  } else {
    page = <Workflows />;
  }
  return (
    <div class="shell">
      <nav class="top" aria-label="Main">
        <a class="brand" href={href(session.role === "admin" ? "admin" : "workflows")}>
          Tidemark
        </a>
        {session.role === "tenant" ? (
          <>
            <a href={href("workflows")} aria-current={top === "workflows" || !top ? "page" : undefined}>
              Workflows
            </a>
            <a href={href("backfills")} aria-current={top === "backfills" ? "page" : undefined}>
              Backfills
            </a>
            <a href={href("notifications")} aria-current={top === "notifications" ? "page" : undefined}>
              Notifications
            </a>
            <a href={href("tenant")} aria-current={top === "tenant" ? "page" : undefined}>
              Tenant
            </a>
          </>
        ) : (
          <a href={href("admin")} aria-current="page">
            Admin
          </a>
        )}
        <span class="who">{session.role === "admin" ? "admin" : `tenant ${session.tenant}`}</span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </nav>
      <main>{page}</main>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
