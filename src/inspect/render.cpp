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
// time, under the mutex.
std::mutex g_graphviz_mutex;
GVC_t* context() {
  static GVC_t* const shared = gvContext();
  if (!shared) throw Error("graphviz: cannot create a context");
  return shared;
}

// Parses and lays out `dot`, then runs render(context, graph), which says
// whether it worked. Returns what went wrong, or "" when nothing did.
template <class Render>
std::string with_layout(const std::string& dot, const std::string& format, Render render) {
  const std::lock_guard<std::mutex> lock(g_graphviz_mutex);
  g_graphviz_error.clear();
  agseterrf(&capture_error);
  GVC_t* gvc = context();
  std::unique_ptr<Agraph_t, int (*)(Agraph_t*)> g(agmemread(dot.c_str()), &agclose);
  if (!g) {
    std::string why = g_graphviz_error;
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    return fmt::format("graphviz could not parse the DOT text ({})",
                       why.empty() ? "no detail" : why);
  }
  if (gvLayout(gvc, g.get(), "dot") != 0)
    return "graphviz has no 'dot' layout plugin (install the graphviz package and run 'dot -c')";
  const bool ok = render(gvc, g.get());
  gvFreeLayout(gvc, g.get());
  if (!ok)
    return fmt::format(
        "graphviz cannot render '{}' (renderer plugin missing: install the graphviz package, or "
        "libgvplugin-cairo for png/pdf)",
        format);
  return {};
}

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
  const std::string why = with_layout(dot, ext, [&](GVC_t* gvc, Agraph_t* g) {
    return gvRenderFilename(gvc, g, ext.c_str(), path.c_str()) == 0;
  });
  if (!why.empty()) {
    write_text(path + ".dot", dot);
    throw Error(fmt::format("{}: {}; the DOT text was written to {}.dot", path, why, path));
  }
}

std::string detail::render_svg(const std::string& dot) {
  std::string svg;
  const std::string why = with_layout(dot, "svg", [&](GVC_t* gvc, Agraph_t* g) {
    char* data = nullptr;
    unsigned int len = 0;
    const bool ok = gvRenderData(gvc, g, "svg", &data, &len) == 0 && data;
    if (ok) svg.assign(data, len);
    if (data) gvFreeRenderData(data);
    return ok;
  });
  if (!why.empty()) throw Error(why);
  return svg;
}

}  // namespace tapegrad
