// Prometheus text exposition format 0.0.4: the one writer both daemons' /metrics text goes through.
#pragma once

#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgeplane::prometheus {

// The Content-Type of a scrape's answer.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// A series' labels in the order written. The views must outlive the call they are passed to.
using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

// A label value with backslash, double quote and newline escaped, as the format requires.
std::string escapeLabelValue(std::string_view value);

// "# HELP name help" (backslash and newline escaped) and "# TYPE name type": once per family,
// before its samples. `type` is counter, gauge, histogram or untyped.
void family(std::string& out, std::string_view name, std::string_view type, std::string_view help);

// A value as the format reads it: integers exactly, other numbers in the shortest form that
// reads back to the same double, and +Inf, -Inf, NaN.
std::string formatValue(double value);

// One line `name{labels} value`.
void sampleText(std::string& out, std::string_view name, const Labels& labels,
                std::string_view value);

template <typename T>
requires std::integral<T> || std::floating_point<T>
void sample(std::string& out, std::string_view name, const Labels& labels, T value) {
  if constexpr (std::integral<T>) {
    sampleText(out, name, labels, std::to_string(value));
  } else {
    sampleText(out, name, labels, formatValue(static_cast<double>(value)));
  }
}

// One histogram series: `name_bucket{...,le="B"}` for each upper bound in `bounds` (ascending)
// and +Inf, cumulative, then `name_sum` and `name_count` (= the +Inf bucket). `perBucket` holds
// the observations that fell in each bucket (not cumulative): bounds.size() + 1 entries, the
// last one for those above every bound.
void histogram(std::string& out, std::string_view name, const Labels& labels,
               std::span<const double> bounds, std::span<const uint64_t> perBucket, double sum);

}  // namespace edgeplane::prometheus
