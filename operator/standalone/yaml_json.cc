// YAML to JSON over yaml-cpp's event parser, with bounded depth, size and aliases; see
// yaml_json.h.
//
// Why events and not YAML::LoadAll: LoadAll builds a node graph in which an alias is the very
// node it names, so `a: &x [*x]` is a cycle any recursive walk follows until the stack is gone,
// and a nested alias bomb is a small graph whose walk never ends. Here every value is built once,
// bottom-up, on an explicit stack; an alias copies a finished value after its expanded size is
// charged to the budget, and an alias to an unfinished one (a cycle) is refused.
#include "operator/standalone/yaml_json.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <charconv>
#include <map>
#include <optional>
#include <regex>
#include <sstream>

namespace modelswap::op {
namespace {

// Thrown from inside the event handler (its methods return void) and caught in YamlToJson.
struct LimitError {
  YAML::Mark mark;
  std::string what;
};

Json TypedScalar(const std::string& tag, const std::string& s) {
  if (tag == "!") return s;  // quoted: always a string
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  static const std::regex int_re("^[-+]?[0-9]+$");
  static const std::regex float_re("^[-+]?([0-9]+\\.[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?$");
  if (std::regex_match(s, int_re)) {
    int64_t v = 0;
    const char* b = s.data() + (s[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(b, s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) return v;
  }
  if (std::regex_match(s, float_re)) return std::stod(s);
  return s;
}

class JsonBuilder : public YAML::EventHandler {
 public:
  explicit JsonBuilder(const YamlLimits& limits) : limits_(limits) {}

  std::vector<Json> TakeDocuments() { return std::move(docs_); }

  void OnDocumentStart(const YAML::Mark&) override {
    stack_.clear();
    anchors_.clear();
    doc_.reset();
  }
  void OnDocumentEnd() override {
    if (doc_ && !doc_->is_null()) docs_.push_back(std::move(*doc_));
    doc_.reset();
  }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Finish(mark, nullptr, 1, anchor);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    Finish(mark, TypedScalar(tag, value), 1, anchor);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) {
      // yaml-cpp numbers an anchor when its node starts, so an alias inside its own node finds
      // no finished value: the document refers to itself.
      throw LimitError{mark, "alias refers to a node that contains it (a cycle)"};
    }
    Charge(mark, it->second.nodes);
    Finish(mark, it->second.value, it->second.nodes, YAML::NullAnchor, /*charged=*/true);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, Json::array(), anchor);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, Json::object(), anchor);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Frame {
    YAML::Mark mark;
    Json value;
    YAML::anchor_t anchor;
    size_t nodes = 1;                // this collection and everything in it, aliases expanded
    std::optional<std::string> key;  // in a map: the key waiting for its value
  };
  struct Anchored {
    Json value;
    size_t nodes;
  };

  void Charge(const YAML::Mark& mark, size_t nodes) {
    if (nodes > limits_.max_nodes - std::min(used_, limits_.max_nodes)) {
      throw LimitError{mark, "document expands to more than " + std::to_string(limits_.max_nodes) +
                                 " nodes (aliases counted as what they expand to)"};
    }
    used_ += nodes;
  }

  void Open(const YAML::Mark& mark, Json empty, YAML::anchor_t anchor) {
    if (stack_.size() >= limits_.max_depth) {
      throw LimitError{mark, "nested deeper than " + std::to_string(limits_.max_depth) + " levels"};
    }
    Charge(mark, 1);
    stack_.push_back(Frame{mark, std::move(empty), anchor});
  }

  void Close() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    if (f.key) throw LimitError{f.mark, "map key \"" + *f.key + "\" has no value"};
    Finish(f.mark, std::move(f.value), f.nodes, f.anchor, /*charged=*/true);
  }

  // A finished value: remembered under its anchor, then placed in its parent (or the document).
  void Finish(const YAML::Mark& mark, Json value, size_t nodes, YAML::anchor_t anchor,
              bool charged = false) {
    if (!charged) Charge(mark, nodes);
    if (anchor != YAML::NullAnchor) anchors_[anchor] = Anchored{value, nodes};
    if (stack_.empty()) {
      doc_ = std::move(value);
      return;
    }
    Frame& parent = stack_.back();
    parent.nodes += nodes;
    if (parent.value.is_array()) {
      parent.value.push_back(std::move(value));
    } else if (!parent.key) {
      if (!value.is_string() && !value.is_number() && !value.is_boolean()) {
        throw LimitError{mark, "map key is not a scalar"};
      }
      parent.key = value.is_string() ? value.get<std::string>() : value.dump();
    } else {
      parent.value[*parent.key] = std::move(value);
      parent.key.reset();
    }
  }

  const YamlLimits limits_;
  std::vector<Frame> stack_;
  std::map<YAML::anchor_t, Anchored> anchors_;
  std::optional<Json> doc_;
  std::vector<Json> docs_;
  size_t used_ = 0;  // nodes built in the whole stream, aliases expanded
};

std::string AtLine(const YAML::Mark& mark) {
  return mark.is_null() ? "" : " at line " + std::to_string(mark.line + 1);
}

}  // namespace

Result<std::vector<Json>> YamlToJson(const std::string& text, const YamlLimits& limits) {
  std::istringstream in(text);
  JsonBuilder builder(limits);
  try {
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(builder)) {
    }
  } catch (const LimitError& e) {
    return Fail(Code::kInvalidArgument, "YAML" + AtLine(e.mark) + ": " + e.what);
  } catch (const YAML::Exception& e) {
    return Fail(Code::kInvalidArgument, std::string("YAML: ") + e.what());
  }
  return builder.TakeDocuments();
}

}  // namespace modelswap::op
