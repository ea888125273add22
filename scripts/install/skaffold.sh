# skaffold (the dev loop of skaffold.yaml) built from the Go module proxy with lib.sh's
# go_build_module: its go.mod has replace directives. scripts/chart-test.sh runs `skaffold diagnose
# --yaml-only` and `skaffold render` on skaffold.yaml with it. (v2.16.1 is the newest the proxy
# served on 2026-12-05; it lists no versions of the module, and v2.15.0/v2.17.0 were refused.)
SKAFFOLD_VERSION=${SKAFFOLD_VERSION:-2.16.1}
SKAFFOLD_BIN=$CAMPUS_CACHE/bin/skaffold

install_skaffold() {
  [ -x "$SKAFFOLD_BIN" ] && [ "$(SKAFFOLD_UPDATE_CHECK=false "$SKAFFOLD_BIN" version 2>/dev/null)" = "v$SKAFFOLD_VERSION" ] && return 0
  local mod=github.com/GoogleContainerTools/skaffold/v2
  echo "deps: skaffold v$SKAFFOLD_VERSION (go build $mod/cmd/skaffold from the Go module proxy, log $CAMPUS_CACHE/skaffold-build.log)"
  (go_build_module "$mod" "$SKAFFOLD_VERSION" "$mod/cmd/skaffold" "$SKAFFOLD_BIN" "$CAMPUS_CACHE/skaffold-build.log" \
    "-X $mod/pkg/skaffold/version.version=v$SKAFFOLD_VERSION -X $mod/pkg/skaffold/version.gitCommit=@HASH@ -X $mod/pkg/skaffold/version.buildDate=@TIME@") || return 1
  [ "$(SKAFFOLD_UPDATE_CHECK=false "$SKAFFOLD_BIN" version)" = "v$SKAFFOLD_VERSION" ] ||
    { echo "deps: $SKAFFOLD_BIN does not report version v$SKAFFOLD_VERSION" >&2; return 1; }
}
