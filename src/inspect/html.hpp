#pragma once
// Private: the pieces of the HTML pages (the graph explorer, and the training
// report that embeds it), shared by src/inspect and src/report.
#include <string>

#include "tapegrad/inspect.hpp"

namespace tapegrad::detail {

// Text for HTML element content and attribute values (& < > " ').
std::string html_escape(const std::string& s);
// A JSON string literal that is also safe inside <script>: < > & become \u003c...
std::string json_string(const std::string& s);
// A JSON number; NaN and infinities, which JSON lacks, as the strings
// "NaN", "Infinity", "-Infinity" (the page reads them with Number()).
std::string json_number(double v);

// The explorer of the graph behind `root`: a <div class="tg-explorer"> with
// the inline SVG, the controls, the panels and a JSON data block. The page
// that holds it must carry page_head()'s style and script.
std::string explorer_fragment(Tape& tape, NodeId root, const HtmlOptions& opt);

// A whole self-contained page: <head> with the style and script of the
// explorer (and `extra_head`, inlined as given), then `body`.
std::string html_page(const std::string& title, const std::string& body,
                      const std::string& extra_head = {});

// Writes text to `path` through a temporary file renamed into place, so a
// failed write leaves an earlier file whole.
void write_file_atomic(const std::string& path, const std::string& text);

// The style sheet and script of the explorer and of the training report,
// kept as files in src/inspect/assets and compiled in by CMake.
extern const char* const kExplorerCss;
extern const char* const kExplorerJs;
extern const char* const kReportCss;
extern const char* const kReportJs;

}  // namespace tapegrad::detail
