// Rendering DOT text through Graphviz's libraries (cgraph + gvc), in process.
#include <fmt/format.h>
#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>

#include <fstream>
#include <memory>
#include <mutex>

#include "inspect/graph.hpp"
#include "tapegrad/inspect.hpp"

namespace tapegrad {
namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f || !(f << text) || !f.flush()) throw Error(fmt::format("{}: cannot write", path));
}

// Graphviz reports parse errors through a callback; keep the text for ours.
thread_local std::string g_graphviz_error;
int capture_error(char* msg) {
  g_graphviz_error += msg;
  return 0;
}

// One Graphviz context for the process. Graphviz's pango text plugin keeps a
// pointer to the last font name it measured, which a freed context leaves
// dangling (the next layout reads freed memory: seen under AddressSanitizer
// when two renders use different fonts); a context that lives as long as the
// process keeps the name alive. Graphviz is not thread-safe: one render at a
// time.
std::mutex g_graphviz_mutex;
struct Context {
  GVC_t* gvc;
  Context() {
    static GVC_t* const shared = gvContext();
    if (!shared) throw Error("graphviz: cannot create a context");
    gvc = shared;
  }
  GVC_t* get() const { return gvc; }
};

std::string extension(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  return path.substr(dot + 1);
}

}  // namespace

void write_graph(const std::string& dot, const std::string& path) {
  const std::string ext = extension(path);
  if (ext == "dot" || ext == "gv") {
    write_text(path, dot);
    return;
  }
  if (ext != "svg" && ext != "png" && ext != "pdf") {
    write_text(path + ".dot", dot);
    throw Error(
        fmt::format("{}: unknown graph format '.{}' (use .svg, .png, .pdf or .dot); the DOT text "
                    "was written to {}.dot",
                    path, ext, path));
  }
  g_graphviz_error.clear();
  agseterrf(&capture_error);
  const std::lock_guard<std::mutex> lock(g_graphviz_mutex);
  Context gvc;
  std::unique_ptr<Agraph_t, int (*)(Agraph_t*)> g(agmemread(dot.c_str()), &agclose);
  if (!g) {
    write_text(path + ".dot", dot);
    std::string why = g_graphviz_error;
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    throw Error(
        fmt::format("{}: graphviz could not parse the DOT text ({}); it was written to {}.dot",
                    path, why.empty() ? "no detail" : why, path));
  }
  if (gvLayout(gvc.get(), g.get(), "dot") != 0) {
    write_text(path + ".dot", dot);
    throw Error(
        fmt::format("{}: graphviz has no 'dot' layout plugin (install the graphviz package and run "
                    "'dot -c'); the DOT text was written to {}.dot",
                    path, path));
  }
  const int rc = gvRenderFilename(gvc.get(), g.get(), ext.c_str(), path.c_str());
  gvFreeLayout(gvc.get(), g.get());
  if (rc != 0) {
    write_text(path + ".dot", dot);
    throw Error(fmt::format(
        "{}: graphviz cannot render '{}' (renderer plugin missing: install the graphviz "
        "package, or libgvplugin-cairo for png/pdf); the DOT text was written to {}.dot",
        path, ext, path));
  }
}

std::string detail::render_svg(const std::string& dot) {
  g_graphviz_error.clear();
  agseterrf(&capture_error);
  const std::lock_guard<std::mutex> lock(g_graphviz_mutex);
  Context gvc;
  std::unique_ptr<Agraph_t, int (*)(Agraph_t*)> g(agmemread(dot.c_str()), &agclose);
  if (!g) throw Error(fmt::format("graphviz could not parse the DOT text ({})", g_graphviz_error));
  if (gvLayout(gvc.get(), g.get(), "dot") != 0)
    throw Error("graphviz has no 'dot' layout plugin (install the graphviz package, run 'dot -c')");
  char* data = nullptr;
  unsigned int len = 0;
  const int rc = gvRenderData(gvc.get(), g.get(), "svg", &data, &len);
  std::string svg = rc == 0 && data ? std::string(data, len) : std::string();
  if (data) gvFreeRenderData(data);
  gvFreeLayout(gvc.get(), g.get());
  if (rc != 0) throw Error("graphviz cannot render svg (install the graphviz package)");
  return svg;
}

}  // namespace tapegrad
