// H5File: a thin RAII wrapper over the HDF5 C API for the harness's results files.
//
// Covers only what smyrf writes: groups, scalar/string/bool attributes, float64 scalars, N-D
// float32/float64 arrays and one-row-per-record compound tables; it also reads uint8 arrays
// (images) by row ranges. Strings are variable-length UTF-8 so that h5py reads them as `str`;
// bools are the enum {FALSE=0, TRUE=1} over int8 that h5py itself writes, so h5py reads them as
// numpy bools.
// Object paths are relative to the file root ("runs/a" and "/runs/a" are the same object).
// Writing a dataset or attribute that exists replaces it; parent groups are created as needed.
// HDF5's automatic error printing is silenced; every failure throws smyrf::IoError (file
// missing, unreadable, corrupt, unwritable) or smyrf::Error (wrong type / shape), naming the
// file and the object. Tested by tests/light/test_results_store.cpp (and h5py via tests/python);
// the uint8 reader by tests/light/test_hdf5_u8.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace smyrf {

// An N-D array read back from a dataset; dims are row-major (C order), as h5py reports them.
template <typename T>
struct H5Array {
  std::vector<T> data;
  std::vector<int64_t> dims;
};

// A single-valued attribute as read back: strings, integers, floats and h5py-style bools.
using H5AttrValue = std::variant<std::string, int64_t, double, bool>;

// One column of a compound table. Numeric columns are stored as float64 (NaN marks a missing
// value), string columns as variable-length UTF-8.
struct H5Column {
  std::string name;
  bool is_string = false;
  std::vector<double> numbers;       // used when !is_string
  std::vector<std::string> strings;  // used when is_string
  size_t size() const { return is_string ? strings.size() : numbers.size(); }
};

class H5File {
 public:
  // Creates (truncating) a file. Throws IoError when the location is not writable.
  static H5File create(const std::string& path);
  // Opens an existing file. Throws IoError when it is missing, unreadable or not HDF5.
  static H5File open(const std::string& path, bool writable);
  // Writes a copy of `src_path` to `dst_path` (truncating) that holds only live objects. HDF5
  // 1.10 forgets space freed in an earlier session (unless it is at the end of the file), so a
  // file whose datasets are replaced again and again grows until it is rewritten like this.
  static void repack(const std::string& src_path, const std::string& dst_path);

  H5File(H5File&& other) noexcept;
  H5File& operator=(H5File&& other) noexcept;
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;
  ~H5File();  // closes quietly; call close() to see errors

  // Flushes and closes; throws IoError when HDF5 reports a failure. Idempotent.
  void close();
  const std::string& path() const { return path_; }
  bool writable() const { return writable_; }

  // ---- groups and links ----
  bool exists(const std::string& obj_path) const;
  bool is_group(const std::string& obj_path) const;    // false when absent
  bool is_dataset(const std::string& obj_path) const;  // false when absent
  void create_groups(const std::string& group_path);   // like mkdir -p
  // Names of the direct children of a group, sorted. Throws when the group is absent.
  std::vector<std::string> children(const std::string& group_path) const;
  void remove(const std::string& obj_path);  // no-op when absent

  // ---- attributes (the object must exist) ----
  void set_attr(const std::string& obj_path, const std::string& name, const std::string& value);
  void set_attr(const std::string& obj_path, const std::string& name, const char* value);
  void set_attr(const std::string& obj_path, const std::string& name, int64_t value);
  void set_attr(const std::string& obj_path, const std::string& name, int value);
  void set_attr(const std::string& obj_path, const std::string& name, double value);
  void set_attr(const std::string& obj_path, const std::string& name, bool value);
  bool has_attr(const std::string& obj_path, const std::string& name) const;
  std::vector<std::string> attr_names(const std::string& obj_path) const;
  void remove_attr(const std::string& obj_path, const std::string& name);  // no-op when absent
  // Getters return nullopt when the object or the attribute is absent and throw smyrf::Error
  // when the stored type does not fit (a string read as a number, 2.5 read as an integer).
  // Integers widen to double; bools read as integers 0/1 and integers as bools (nonzero).
  std::optional<std::string> attr_string(const std::string& obj_path, const std::string& name) const;
  std::optional<double> attr_double(const std::string& obj_path, const std::string& name) const;
  std::optional<int64_t> attr_int(const std::string& obj_path, const std::string& name) const;
  std::optional<bool> attr_bool(const std::string& obj_path, const std::string& name) const;
  // Every single-valued string/integer/float/bool attribute of an object in one pass (others
  // are skipped); much cheaper than one getter call per attribute. Throws when it is absent.
  std::map<std::string, H5AttrValue> read_attrs(const std::string& obj_path) const;

  // ---- datasets ----
  void write_scalar(const std::string& path, double value);
  double read_scalar(const std::string& path) const;
  // dims must multiply to data.size(); empty dims means 1-D of length data.size().
  // The file type follows the element type: float64 for double, float32 for float.
  void write_array(const std::string& path, const std::vector<double>& data,
                   const std::vector<int64_t>& dims = {});
  void write_array(const std::string& path, const std::vector<float>& data,
                   const std::vector<int64_t>& dims = {});
  // Read any integer or float dataset, converting to the requested element type.
  H5Array<double> read_array_f64(const std::string& path) const;
  H5Array<float> read_array_f32(const std::string& path) const;
  // Bits per element as stored in the file (32 or 64 for floats).
  int stored_element_bits(const std::string& path) const;
  // A dataset's dims (row-major) without reading it; [] for a scalar.
  std::vector<int64_t> dataset_dims(const std::string& path) const;
  // Rows [first_row, first_row + row_count) along dim 0 of an 8-bit unsigned integer dataset
  // (row_count -1: to the end), e.g. images stored as uint8 (N, 3, H, W) read a batch at a time.
  // dims are those of the rows read. Throws smyrf::Error for another element type or a range
  // outside the dataset, so no value is silently converted or clipped.
  H5Array<uint8_t> read_array_u8(const std::string& path, int64_t first_row = 0, int64_t row_count = -1) const;

  // A 1-D compound dataset, one record per row. All columns must have the same length and
  // distinct names; zero rows is allowed.
  void write_table(const std::string& path, const std::vector<H5Column>& columns);
  // Reads a compound table back: string members (variable-length) as strings, integer and
  // float members as float64, in the stored member order.
  std::vector<H5Column> read_table(const std::string& path) const;

 private:
  H5File(std::string path, int64_t file_id, bool writable);
  [[noreturn]] void fail(const std::string& action, const std::string& obj_path) const;
  void check_writable(const std::string& action, const std::string& obj_path) const;
  void write_string_attr_raw(const std::string& obj_path, const std::string& name, const std::string& value);

  std::string path_;
  int64_t file_id_ = -1;  // hid_t; kept out of this header so hdf5.h stays private
  bool writable_ = false;
};

}  // namespace smyrf
