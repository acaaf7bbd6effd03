// A strict reader of Prometheus text exposition format 0.0.4 for tests: every line checked
// against the grammar, and the rules a scraper relies on (HELP and TYPE once per family, before
// its samples; label escaping; histogram buckets cumulative with +Inf equal to _count).
#pragma once

#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace edgeplane::testing {

struct ParsedMetrics {
  std::map<std::string, std::string> types;  // family -> counter|gauge|histogram
  std::map<std::string, double> samples;     // name{labels as written} -> value
  std::vector<std::string> errors;           // empty: the text is well-formed
};

namespace prometheus_detail {

inline const std::string kName = "[a-zA-Z_:][a-zA-Z0-9_:]*";
inline const std::string kLabel = "[a-zA-Z_][a-zA-Z0-9_]*";
// A label value: any byte but a backslash, a quote or a newline, or one of the three escapes.
inline const std::string kLabelValue = R"("(?:[^"\\\n]|\\[\\"n])*")";
inline const std::string kValue =
    R"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]Inf|NaN)";

// The label pairs of `{a="x",b="y"}` (without the braces), values still escaped.
inline std::vector<std::pair<std::string, std::string>> splitLabels(const std::string& body) {
  std::vector<std::pair<std::string, std::string>> out;
  static const std::regex pair("(" + kLabel + ")=(" + kLabelValue + "),?");
  for (auto it = std::sregex_iterator(body.begin(), body.end(), pair); it != std::sregex_iterator();
       ++it) {
    out.emplace_back((*it)[1], (*it)[2]);
  }
  return out;
}

inline double parseValue(const std::string& text) {
  if (text == "+Inf") {
    return INFINITY;
  }
  if (text == "-Inf") {
    return -INFINITY;
  }
  if (text == "NaN") {
    return NAN;
  }
  return std::stod(text);
}

struct HistogramSeries {
  std::vector<std::pair<double, double>> buckets;  // (le, cumulative count) in text order
  std::optional<double> sum;
  std::optional<double> count;
};

inline void checkHistograms(const std::map<std::string, HistogramSeries>& series,
                            std::vector<std::string>& errors) {
  for (const auto& [key, h] : series) {
    if (h.buckets.empty() || !std::isinf(h.buckets.back().first)) {
      errors.push_back("histogram without a final +Inf bucket: " + key);
      continue;
    }
    for (size_t i = 1; i < h.buckets.size(); ++i) {
      if (!(h.buckets[i].first > h.buckets[i - 1].first)) {
        errors.push_back("histogram buckets not in ascending le order: " + key);
      }
      if (h.buckets[i].second < h.buckets[i - 1].second) {
        errors.push_back("histogram buckets not cumulative: " + key);
      }
    }
    if (!h.sum || !h.count) {
      errors.push_back("histogram without _sum or _count: " + key);
    } else if (*h.count != h.buckets.back().second) {
      errors.push_back("histogram _count differs from its +Inf bucket: " + key);
    }
  }
}

}  // namespace prometheus_detail

inline ParsedMetrics parseMetrics(const std::string& text) {
  using namespace prometheus_detail;
  ParsedMetrics p;
  static const std::regex help("^# HELP (" + kName + R"() (?:[^\\\n]|\\[\\n])*$)");
  static const std::regex type("^# TYPE (" + kName + ") (counter|gauge|histogram|untyped)$");
  static const std::regex sampleRe("^(" + kName + ")(?:\\{((?:" + kLabel + "=" + kLabelValue +
                                   ",?)*)\\})? (" + kValue + ")$");
  std::string family;
  std::string helped;
  std::set<std::string> helpedFamilies;
  std::map<std::string, HistogramSeries> histograms;  // family{labels but le} -> series
  if (text.empty() || text.back() != '\n') {
    p.errors.push_back("does not end with a newline");
  }
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::string line = text.substr(start, end - start);
    start = end == std::string::npos ? text.size() : end + 1;
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      helped = m[1];
      if (!helpedFamilies.insert(helped).second) {
        p.errors.push_back("HELP given twice: " + helped);
      }
    } else if (std::regex_match(line, m, type)) {
      if (m[1] != helped) {
        p.errors.push_back("TYPE without HELP just before: " + line);
      }
      family = m[1];
      if (p.types.count(family) != 0) {
        p.errors.push_back("family declared twice: " + family);
      }
      p.types[family] = m[2];
      if (m[2] == "counter" && !family.ends_with("_total")) {
        p.errors.push_back("counter not named *_total: " + family);
      }
    } else if (std::regex_match(line, m, sampleRe)) {
      const std::string name = m[1];
      const bool histogram = p.types[family] == "histogram";
      const bool histogramPart =
          histogram &&
          (name == family + "_bucket" || name == family + "_sum" || name == family + "_count");
      if (name != family && !histogramPart) {
        p.errors.push_back("sample outside its family: " + line);
      }
      const auto labels = splitLabels(m[2]);
      std::set<std::string> seenLabels;
      std::string le;
      std::string others;
      for (const auto& [label, value] : labels) {
        if (!seenLabels.insert(label).second) {
          p.errors.push_back("label given twice: " + line);
        }
        if (label == "le" && name == family + "_bucket") {
          le = value.substr(1, value.size() - 2);
        } else {
          others += label + "=" + value + ",";
        }
      }
      const std::string key = line.substr(0, line.rfind(' '));
      if (p.samples.count(key) != 0) {
        p.errors.push_back("duplicate series: " + key);
      }
      const double value = parseValue(m[3]);
      p.samples[key] = value;
      if (histogram && histogramPart) {
        HistogramSeries& h = histograms[family + "{" + others + "}"];
        if (name == family + "_bucket") {
          if (le.empty()) {
            p.errors.push_back("bucket without le: " + line);
          } else {
            h.buckets.emplace_back(parseValue(le), value);
          }
        } else if (name == family + "_sum") {
          h.sum = value;
        } else {
          h.count = value;
        }
      }
    } else {
      p.errors.push_back("unparsable line: " + line);
    }
  }
  checkHistograms(histograms, p.errors);
  return p;
}

}  // namespace edgeplane::testing
