// The HTML explorer and the training report as library features: the JSON
// block is valid JSON, labels are escaped, ids are unique and match the data,
// the steps are the trace's lines, and the page asks for nothing outside
// itself. (The pages' behaviour in a browser: tests/browser/run.mjs.)
#include <fmt/format.h>
#include <tapegrad/inspect.hpp>
#include <tapegrad/report.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "helpers.hpp"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

// A strict JSON reader (RFC 8259) that keeps what the tests look at: every
// string value, in order. Throws std::runtime_error at the first fault.
struct Json {
  const std::string& s;
  std::size_t i = 0;
  std::vector<std::string> strings{};
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
  }
  [[noreturn]] void fail(const char* what) {
    throw std::runtime_error(std::string(what) + " at offset " + std::to_string(i));
  }
  void expect(char c) {
    if (i >= s.size() || s[i] != c) fail("unexpected character");
    ++i;
  }
  std::string str() {
    expect('"');
    std::string out;
    while (true) {
      if (i >= s.size()) fail("unterminated string");
      const char c = s[i++];
      if (c == '"') break;
      if (static_cast<unsigned char>(c) < 0x20) fail("raw control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      const char e = s[i++];
      const std::string simple = "\"\\/bfnrt";
      if (simple.find(e) != std::string::npos) {
        out += e == 'n'   ? '\n'
               : e == 't' ? '\t'
               : e == 'b' ? '\b'
               : e == 'f' ? '\f'
               : e == 'r' ? '\r'
                          : e;
      } else if (e == 'u') {
        const unsigned v = static_cast<unsigned>(std::stoul(s.substr(i, 4), nullptr, 16));
        i += 4;
        if (v < 0x80)
          out += static_cast<char>(v);
        else
          fail("test reader: non-ASCII \\u escape");
      } else {
        fail("bad escape");
      }
    }
    return out;
  }
  void value() {
    ws();
    if (i >= s.size()) fail("end of input");
    const char c = s[i];
    if (c == '{') {
      ++i, ws();
      if (s[i] == '}') return void(++i);
      while (true) {
        ws(), str(), ws(), expect(':'), value(), ws();
        if (s[i] == ',') {
          ++i;
          continue;
        }
        expect('}');
        return;
      }
    }
    if (c == '[') {
      ++i, ws();
      if (s[i] == ']') return void(++i);
      while (true) {
        value(), ws();
        if (s[i] == ',') {
          ++i;
          continue;
        }
        expect(']');
        return;
      }
    }
    if (c == '"') return strings.push_back(str());
    for (const char* lit : {"true", "false", "null"})
      if (s.compare(i, std::strlen(lit), lit) == 0) return void(i += std::strlen(lit));
    static const std::regex number(R"(-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)");
    std::smatch m;
    const std::string rest = s.substr(i, 64);
    if (!std::regex_search(rest, m, number, std::regex_constants::match_continuous))
      fail("bad value");
    i += static_cast<std::size_t>(m.length(0));
  }
  void parse() {
    value(), ws();
    if (i != s.size()) fail("trailing text");
  }
};

std::string data_block(const std::string& page, std::size_t nth = 0) {
  std::size_t at = 0;
  for (std::size_t k = 0; k <= nth; ++k) {
    at = page.find("class=\"tg-data\">", at);
    REQUIRE(at != std::string::npos);
    at += 16;
  }
  const auto end = page.find("</script>", at);
  REQUIRE(end != std::string::npos);
  return page.substr(at, end - at);
}

std::vector<std::string> all_ids(const std::string& page) {
  std::vector<std::string> ids;
  static const std::regex id(R"re(\sid="([^"]*)")re");
  for (auto it = std::sregex_iterator(page.begin(), page.end(), id); it != std::sregex_iterator();
       ++it)
    ids.push_back((*it)[1]);
  return ids;
}

// The page loads nothing: no URL but the SVG namespace names, no external
// script, style sheet, image or font.
void require_self_contained(std::string page) {
  for (const char* ns :
       {"xmlns=\"http://www.w3.org/2000/svg\"", "xmlns:xlink=\"http://www.w3.org/1999/xlink\""})
    for (auto at = page.find(ns); at != std::string::npos; at = page.find(ns))
      page.erase(at, std::strlen(ns));
  for (const char* bad :
       {"http:", "https:", "//cdn", "<link", "src=", "@import", "url(", "<iframe", "<img"}) {
    INFO(bad);
    CHECK(page.find(bad) == std::string::npos);
  }
}

// The backward lines of a trace: after the seed line, up to the blank line.
std::vector<std::string> backward_lines(const std::string& trace) {
  std::vector<std::string> out;
  std::istringstream in(trace);
  std::string line;
  bool on = false;
  while (std::getline(in, line)) {
    if (line.find("(seed)") != std::string::npos)
      on = true;
    else if (line.empty())
      on = false;
    else if (on)
      out.push_back(line);
  }
  return out;
}

}  // namespace

TEST_CASE("the explorer of worked example 2: valid JSON, the trace's steps, unique ids",
          "[inspect][html]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar w0 = tg::var(2).named("w0"), x0 = tg::var(-1).named("x0"),
             w1 = tg::var(-3).named("w1"), x1 = tg::var(-2).named("x1"),
             w2 = tg::var(-3).named("w2");
  tg::Scalar f = tg::sigmoid(w0 * x0 + w1 * x1 + w2).named("f");
  f.backward();
  const std::string page = tg::to_html(f, {.title = "example 2"});
  const std::string data = data_block(page);
  Json j{data};
  REQUIRE_NOTHROW(j.parse());
  // Every step line is a line of the trace, in the trace's order.
  std::vector<std::string> texts;
  static const std::regex text(R"re("text":"((?:[^"\\]|\\.)*)")re");
  const auto steps_at = data.find("\"steps\":");
  REQUIRE(steps_at != std::string::npos);
  const std::string steps = data.substr(steps_at);
  for (auto it = std::sregex_iterator(steps.begin(), steps.end(), text);
       it != std::sregex_iterator(); ++it)
    texts.push_back((*it)[1]);
  const std::vector<std::string> expected = backward_lines(tg::trace(f));
  REQUIRE(expected.size() == 9);  // 2 per add and mul, 1 for the sigmoid
  CHECK(texts == expected);
  // Every node of the graph is an SVG group named as in the trace; ids are unique.
  const auto ids = all_ids(page);
  const std::set<std::string> unique(ids.begin(), ids.end());
  CHECK(unique.size() == ids.size());
  for (int s = 1; s <= 10; ++s) CHECK(unique.count(fmt::format("s{}", s)) == 1);
  // Every edge a step names is an SVG group too.
  static const std::regex edge(R"re("edge":"([^"]*)")re");
  int edges = 0;
  for (auto it = std::sregex_iterator(data.begin(), data.end(), edge); it != std::sregex_iterator();
       ++it, ++edges)
    CHECK(unique.count((*it)[1]) == 1);
  CHECK(edges == 9);
  // What the tape holds: in the data, and as a panel beside the trace.
  CHECK_THAT(
      data, Contains("\"memory\":{\"in_use\":") && Contains("\"mul\":2") && Contains("\"leaf\":5"));
  CHECK_THAT(page, Contains("<h3>tape memory</h3>") && Contains("tape memory: "));
  CHECK_THAT(page, Contains("<svg") && Contains("font-family=\"DejaVu Sans\""));
  CHECK(page.find("<?xml") == std::string::npos);
  CHECK(page.find("<!DOCTYPE svg") == std::string::npos);
  require_self_contained(page);
  CHECK(page.size() < 100'000);
}

TEST_CASE("the explorer escapes labels in the SVG, the HTML and the JSON", "[inspect][html]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const std::string evil = "</script><script>alert(\"x\")</script> & 'q'\n\\";
  tg::Scalar a = tg::var(1.5).named(evil);
  tg::Scalar f = (a * a + 1).named("f");
  f.backward();
  const std::string page = tg::to_html(f, {.title = evil});
  // The only <script> elements are the page's own: the script in the head
  // and the one data block.
  std::size_t scripts = 0;
  for (auto at = page.find("<script"); at != std::string::npos; at = page.find("<script", at + 1))
    ++scripts;
  CHECK(scripts == 2);
  CHECK(page.find("alert(\"x\")</script>") == std::string::npos);
  CHECK_THAT(page, Contains("&lt;/script&gt;&lt;script&gt;alert"));  // heading and SVG text
  // The JSON reads back the label exactly.
  Json j{data_block(page)};
  REQUIRE_NOTHROW(j.parse());
  CHECK(std::count(j.strings.begin(), j.strings.end(), evil) >= 1);
}

TEST_CASE("the explorer of a tensor graph: shapes, heat-map values, NaN as a string",
          "[inspect][html]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor W = tg::tensor({{0.15, 0.20}, {0.25, 0.30}}, {tg::DType::f64, true}).named("W");
  tg::Tensor x = tg::tensor({0.05, 0.10}, {2, 1}).named("x");
  tg::Tensor big = tg::uniform({40, 40}, -1, 1, 3, {tg::DType::f64, true}).named("big");
  tg::Tensor loss = (tg::sum(tg::sigmoid(tg::matmul(W, x))) + tg::sum(big * big)).named("loss");
  loss.backward();
  const std::string page = tg::to_html(loss, {.max_values = 100});
  const std::string data = data_block(page);
  Json j{data};
  REQUIRE_NOTHROW(j.parse());
  CHECK_THAT(data, Contains("\"shape\":[2,2]") && Contains("\"shape\":[40,40]"));
  // The 2x2 weight carries its numbers; the 1600-element tensor only a summary.
  CHECK_THAT(data, Contains("\"value\":[0.15,0.2,0.25,0.3]"));
  CHECK_THAT(data, Contains("\"name\":\"big\"") && Contains("\"value\":null"));
  require_self_contained(page);
}

TEST_CASE("the explorer writes NaN and infinities as JSON strings", "[inspect][html]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar a = tg::var(-1).named("a"), b = tg::var(0).named("b");
  tg::Scalar f = tg::log(a) + tg::log(b);  // NaN and -inf, with anomaly mode off
  f.backward();
  const std::string data = data_block(tg::to_html(f));
  Json j{data};
  REQUIRE_NOTHROW(j.parse());
  CHECK(std::count(j.strings.begin(), j.strings.end(), "NaN") >= 1);
  CHECK(std::count(j.strings.begin(), j.strings.end(), "-Infinity") >= 1);
}

TEST_CASE("write_html reports a path it cannot write and leaves an earlier file whole",
          "[inspect][html]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar a = tg::var(2).named("a");
  tg::Scalar f = tg::exp(a);
  f.backward();
  const fs::path dir = fs::temp_directory_path() / "tapegrad-html-test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  try {
    tg::write_html(f, (dir / "no-such-folder" / "x.html").string());
    FAIL("no error");
  } catch (const tg::Error& e) {
    CHECK_THAT(e.what(), Contains("no-such-folder/x.html") && Contains("cannot write"));
  }
  const fs::path good = dir / "page.html";
  tg::write_html(f, good.string());
  std::ifstream in(good);
  const std::string text{std::istreambuf_iterator<char>(in), {}};
  CHECK(text == tg::to_html(f));
  CHECK_FALSE(fs::exists(dir / "page.html.tmp"));
  // A folder where the file should go: an error naming it; the folder stays.
  fs::create_directories(dir / "taken.html");
  CHECK_THROWS_WITH(tg::write_html(f, (dir / "taken.html").string()), Contains("taken.html"));
  CHECK(fs::is_directory(dir / "taken.html"));
  fs::remove_all(dir);
}

TEST_CASE("histogram counts every finite value once, in the right bin", "[report]") {
  const tg::report::Histogram h = tg::report::histogram({0, 1, 2, 3, 4, 4, NAN, INFINITY}, 4);
  CHECK(h.lo == 0);
  CHECK(h.hi == 4);
  CHECK(h.counts == std::vector<std::int64_t>{1, 1, 1, 3});
  const tg::report::Histogram one = tg::report::histogram({5, 5}, 3);
  CHECK(one.counts == std::vector<std::int64_t>{0, 2, 0});
  CHECK(tg::report::histogram({}, 3).counts == std::vector<std::int64_t>{0, 0, 0});
}

namespace {
// Records |w| of every parameter before the monitor's step, to check its ratio.
struct WeightNorms : tg::nn::Callback {
  std::vector<std::vector<double>> norms;
  void on_after_backward(tg::nn::Trainer& t, const tg::nn::StepInfo&) override {
    std::vector<double> n;
    for (tg::nn::Parameter* p : t.model().parameters()) {
      double s = 0;
      for (double v : p->values()) s += v * v;
      n.push_back(std::sqrt(s));
    }
    norms.push_back(n);
  }
};
}  // namespace

TEST_CASE(
    "TrainingMonitor: plain SGD's update ratio is lr |grad| / |w|; the report holds the metrics",
    "[report]") {
  const tg::nn::Dataset train = tg::nn::make_moons(200, 2), test = tg::nn::make_moons(50, 3);
  tg::nn::MLP model({2, 8, 2}, {.seed = 1});
  const double lr = 0.05;
  tg::nn::SGD sgd(model.parameters(), {.lr = lr, .momentum = 0});
  tg::nn::Trainer trainer(model, sgd, {.epochs = 3, .batch_size = 20});
  WeightNorms w;
  tg::report::TrainingMonitor monitor({.samples_per_epoch = 5, .bins = 10});
  trainer.add_callback(w);
  trainer.add_callback(monitor);
  const auto& rows = trainer.fit(train, &test);
  REQUIRE(monitor.names().size() == 4);
  CHECK(monitor.names()[0] == "layer0.weight");
  // 10 steps per epoch, every 2nd measured.
  REQUIRE(monitor.steps().size() == 15);
  CHECK(monitor.steps()[0].global_step == 1);
  CHECK(monitor.steps()[0].at == Approx(0.2));
  for (const auto& s : monitor.steps()) {
    const auto& before = w.norms[static_cast<std::size_t>(s.global_step)];
    for (std::size_t p = 0; p < 4; ++p)
      CHECK(s.update_ratio[p] == Approx(lr * s.grad_norm[p] / before[p]).epsilon(1e-4));
  }
  REQUIRE(monitor.histograms().size() == 3);
  for (const auto& h : monitor.histograms()) {
    std::int64_t n = 0;
    for (auto c : h.weights[0].counts) n += c;
    CHECK(n == 16);  // layer0.weight is 2 x 8
  }
  // The report's loss chart holds every epoch's numbers exactly.
  const std::string page = tg::report::training_report(rows, monitor);
  for (const auto& r : rows) {
    for (const auto& [key, v] : {std::pair<std::string, double>{"train_loss", r.train_loss},
                                 {"test_loss", r.test_loss},
                                 {"test_accuracy", r.test_accuracy}}) {
      INFO(key);
      const auto g = page.find("data-series=\"" + key + "\"");
      REQUIRE(g != std::string::npos);
      CHECK(page.find(fmt::format("data-x=\"{}\" data-y=\"{}\"", r.epoch, v), g) !=
            std::string::npos);
    }
  }
  CHECK_THAT(page, Contains("no flags"));
  require_self_contained(page);
  // Thresholds that every value crosses raise every flag.
  const std::string flagged =
      tg::report::training_report(rows, monitor, {.exploding = 1e-12, .ratio_low = 1e9});
  CHECK_THAT(flagged, Contains("layer0.weight: EXPLODING gradient") &&
                          Contains("layer1.bias: median update/weight"));
  const std::string vanishing = tg::report::training_report(rows, monitor, {.vanishing = 1e9});
  CHECK_THAT(vanishing, Contains("VANISHING gradient, median norm"));
}
