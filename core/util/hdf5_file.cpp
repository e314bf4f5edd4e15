// H5File implementation over the HDF5 C API (1.10+). Every hid_t lives in an Id handle that
// closes it; HDF5's own error stack is silenced and its innermost message is copied into the
// exception. Tested by tests/light/test_results_store.cpp.
#include "core/util/hdf5_file.h"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <type_traits>
#include <utility>

#include <fmt/ranges.h>

#include "core/util/check.h"

namespace smyrf {

static_assert(std::is_same_v<hid_t, int64_t>, "H5File stores hid_t as int64_t (HDF5 >= 1.10)");

namespace {

// Owns one HDF5 identifier and closes it with the matching H5xclose.
class Id {
 public:
  using Closer = herr_t (*)(hid_t);
  Id() = default;
  Id(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Id(Id&& other) noexcept : id_(std::exchange(other.id_, -1)), closer_(other.closer_) {}
  Id& operator=(Id&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, -1);
      closer_ = other.closer_;
    }
    return *this;
  }
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  ~Id() { reset(); }
  void reset() {
    if (id_ >= 0 && closer_ != nullptr) closer_(id_);
    id_ = -1;
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

// Before the first file of the process: HDF5's exit-time cleanup off (every file is closed by its
// H5File; a close that failed on a full disk left the file in HDF5's tables, and the cleanup then
// crashed flushing it again), and its error stack silent (errors are thrown with their detail).
void prepare_hdf5() {
  static const bool once = [] {
    H5dont_atexit();  // only has an effect before the library initialises, hence first
    return true;
  }();
  (void)once;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

herr_t collect_innermost(unsigned /*n*/, const H5E_error2_t* err, void* out) {
  // The downward walk ends at the innermost frame, which carries the specific cause
  // ("file signature not found") rather than the generic API message.
  if (err->desc != nullptr && err->desc[0] != '\0') *static_cast<std::string*>(out) = err->desc;
  return 0;
}

// The innermost message of HDF5's current error stack, which is then cleared.
std::string hdf5_error_detail() {
  std::string detail;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_innermost, &detail);
  H5Eclear2(H5E_DEFAULT);
  return detail.empty() ? "HDF5 gave no detail" : detail;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string absolute(const std::string& path) {
  std::string out;
  for (const auto& part : split_path(path)) out += "/" + part;
  return out.empty() ? "/" : out;
}

Id make_fapl() {
  Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // STRONG: closing the file closes every object still open in it, so a close really
  // releases the file before it is fsync'ed and renamed.
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 10, 7)
  // flock() fails on some cluster file systems (NFS, Lustre); writers here never share a file,
  // since ResultsStore edits a private copy and renames it into place.
  H5Pset_file_locking(fapl.get(), false, true);
#endif
  return fapl;
}

Id vlen_string_type() {
  Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

// h5py's own bool type, so that h5py reads these attributes as numpy.bool_.
Id bool_type() {
  Id type(H5Tenum_create(H5T_NATIVE_INT8), H5Tclose);
  int8_t value = 0;
  H5Tenum_insert(type.get(), "FALSE", &value);
  value = 1;
  H5Tenum_insert(type.get(), "TRUE", &value);
  return type;
}

Id link_create_plist() {
  Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  H5Pset_char_encoding(lcpl.get(), H5T_CSET_UTF8);
  return lcpl;
}

// Frees the variable-length parts HDF5 allocated while reading into `buf`.
struct VlenReclaimer {
  hid_t type;
  hid_t space;
  void* buf;
  ~VlenReclaimer() {
    if (buf != nullptr) H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf);
  }
};

herr_t collect_link_name(hid_t /*group*/, const char* name, const H5L_info_t* /*info*/, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

herr_t collect_attr_name(hid_t /*loc*/, const char* name, const H5A_info_t* /*info*/, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

std::string describe_class(H5T_class_t cls) {
  switch (cls) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    case H5T_ENUM: return "enum/bool";
    case H5T_COMPOUND: return "compound";
    default: return "type class " + std::to_string(static_cast<int>(cls));
  }
}

}  // namespace

// ---------------------------------------------------------------- open / close / repack

H5File::H5File(std::string path, int64_t file_id, bool writable)
    : path_(std::move(path)), file_id_(file_id), writable_(writable) {}

H5File::H5File(H5File&& other) noexcept
    : path_(std::move(other.path_)), file_id_(std::exchange(other.file_id_, -1)), writable_(other.writable_) {}

H5File& H5File::operator=(H5File&& other) noexcept {
  if (this != &other) {
    if (file_id_ >= 0) H5Fclose(file_id_);
    path_ = std::move(other.path_);
    file_id_ = std::exchange(other.file_id_, -1);
    writable_ = other.writable_;
  }
  return *this;
}

H5File::~H5File() {
  if (file_id_ >= 0) H5Fclose(file_id_);
}

void H5File::close() {
  if (file_id_ < 0) return;
  hid_t id = std::exchange(file_id_, -1);
  if (H5Fclose(id) < 0) {
    throw IoError(fmt::format("closing HDF5 file '{}' failed ({}); check free disk space and re-run", path_,
                              hdf5_error_detail()));
  }
}

H5File H5File::create(const std::string& path) {
  prepare_hdf5();
  Id fapl = make_fapl();
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
  if (id < 0) {
    throw IoError(fmt::format("cannot create HDF5 file '{}' ({}); check that its directory exists and is writable",
                              path, hdf5_error_detail()));
  }
  return H5File(path, id, true);
}

H5File H5File::open(const std::string& path, bool writable) {
  prepare_hdf5();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw IoError(fmt::format("HDF5 file '{}' does not exist; check the path", path));
  }
  if (::access(path.c_str(), R_OK) != 0) {
    throw IoError(fmt::format("cannot read '{}' (permission denied); fix its permissions", path));
  }
  if (writable && ::access(path.c_str(), W_OK) != 0) {
    throw IoError(fmt::format("cannot write '{}' (permission denied); fix its permissions or choose another path",
                              path));
  }
  Id fapl = make_fapl();
  hid_t id = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl.get());
  if (id < 0) {
    throw IoError(fmt::format("'{}' is not a readable HDF5 file ({}); delete it or choose another output path", path,
                              hdf5_error_detail()));
  }
  return H5File(path, id, writable);
}

void H5File::repack(const std::string& src_path, const std::string& dst_path) {
  H5File src = open(src_path, /*writable=*/false);
  H5File dst = create(dst_path);
  for (const auto& name : src.attr_names("/")) {
    Id src_attr(H5Aopen(src.file_id_, name.c_str(), H5P_DEFAULT), H5Aclose);
    if (!src_attr.ok()) src.fail("open root attribute '" + name + "' of", "/");
    Id type(H5Aget_type(src_attr.get()), H5Tclose);
    Id space(H5Aget_space(src_attr.get()), H5Sclose);
    hssize_t count = H5Sget_simple_extent_npoints(space.get());
    std::vector<unsigned char> buf(static_cast<size_t>(std::max<hssize_t>(count, 1)) * H5Tget_size(type.get()));
    if (H5Aread(src_attr.get(), type.get(), buf.data()) < 0) src.fail("read root attribute '" + name + "' of", "/");
    VlenReclaimer reclaim{type.get(), space.get(), buf.data()};
    Id dst_attr(H5Acreate2(dst.file_id_, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose);
    if (!dst_attr.ok() || H5Awrite(dst_attr.get(), type.get(), buf.data()) < 0) {
      dst.fail("copy root attribute '" + name + "' into", "/");
    }
  }
  Id lcpl = link_create_plist();
  for (const auto& child : src.children("/")) {
    if (H5Ocopy(src.file_id_, child.c_str(), dst.file_id_, child.c_str(), H5P_DEFAULT, lcpl.get()) < 0) {
      dst.fail("copy '" + child + "' from '" + src_path + "' into", "/" + child);
    }
  }
  dst.close();
  src.close();
}

void H5File::fail(const std::string& action, const std::string& obj_path) const {
  throw IoError(fmt::format("cannot {} '{}' in HDF5 file '{}' ({}); if the file is damaged, delete it and re-run",
                            action, absolute(obj_path), path_, hdf5_error_detail()));
}

void H5File::check_writable(const std::string& action, const std::string& obj_path) const {
  if (file_id_ < 0) throw Error(fmt::format("HDF5 file '{}' is closed; cannot {} '{}'", path_, action, obj_path));
  if (!writable_) {
    throw Error(fmt::format("HDF5 file '{}' was opened read-only; cannot {} '{}' (open it with writable=true)",
                            path_, action, absolute(obj_path)));
  }
}

// ---------------------------------------------------------------- groups and links

namespace {

// Opens obj_path, or returns an invalid Id when it does not exist. One H5Oopen is much cheaper
// than checking each path component first; a missing component simply makes it fail.
Id open_object(hid_t file_id, const std::string& obj_path) {
  Id obj(H5Oopen(file_id, absolute(obj_path).c_str(), H5P_DEFAULT), H5Oclose);
  if (!obj.ok()) H5Eclear2(H5E_DEFAULT);
  return obj;
}

}  // namespace

bool H5File::exists(const std::string& obj_path) const { return open_object(file_id_, obj_path).ok(); }

bool H5File::is_group(const std::string& obj_path) const {
  Id obj = open_object(file_id_, obj_path);
  return obj.ok() && H5Iget_type(obj.get()) == H5I_GROUP;
}

bool H5File::is_dataset(const std::string& obj_path) const {
  Id obj = open_object(file_id_, obj_path);
  return obj.ok() && H5Iget_type(obj.get()) == H5I_DATASET;
}

void H5File::create_groups(const std::string& group_path) {
  check_writable("create group", group_path);
  std::string current;
  for (const auto& part : split_path(group_path)) {
    current += "/" + part;
    if (exists(current)) {
      if (!is_group(current)) {
        throw Error(fmt::format("cannot create group '{}' in HDF5 file '{}': '{}' exists and is not a group",
                                absolute(group_path), path_, current));
      }
      continue;
    }
    Id lcpl = link_create_plist();
    Id group(H5Gcreate2(file_id_, current.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!group.ok()) fail("create group", current);
  }
}

std::vector<std::string> H5File::children(const std::string& group_path) const {
  Id group = open_object(file_id_, group_path);
  if (!group.ok() || H5Iget_type(group.get()) != H5I_GROUP) {
    throw Error(fmt::format("HDF5 file '{}' has no group '{}'", path_, absolute(group_path)));
  }
  // One pass over the name index; H5Lget_name_by_idx would rebuild a table per call, which
  // made listing /runs quadratic in the number of runs.
  std::vector<std::string> names;
  hsize_t idx = 0;
  if (H5Literate(group.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, collect_link_name, &names) < 0) {
    fail("list group", group_path);
  }
  return names;
}

void H5File::remove(const std::string& obj_path) {
  check_writable("remove", obj_path);
  std::string abs = absolute(obj_path);
  if (abs == "/") throw Error(fmt::format("cannot remove the root group of HDF5 file '{}'", path_));
  std::string current;
  for (const auto& part : split_path(obj_path)) {
    current += "/" + part;
    if (H5Lexists(file_id_, current.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return;
    }
  }
  if (H5Ldelete(file_id_, abs.c_str(), H5P_DEFAULT) < 0) fail("remove", obj_path);
}

// ---------------------------------------------------------------- attributes

void H5File::write_string_attr_raw(const std::string& obj_path, const std::string& name, const std::string& value) {
  check_writable("set attribute '" + name + "' of", obj_path);
  Id obj = open_object(file_id_, obj_path);
  if (!obj.ok()) {
    throw Error(fmt::format("cannot set attribute '{}': HDF5 file '{}' has no object '{}'", name, path_,
                            absolute(obj_path)));
  }
  if (H5Aexists(obj.get(), name.c_str()) > 0) H5Adelete(obj.get(), name.c_str());
  Id type = vlen_string_type();
  Id space(H5Screate(H5S_SCALAR), H5Sclose);
  Id attr(H5Acreate2(obj.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  const char* ptr = value.c_str();
  if (!attr.ok() || H5Awrite(attr.get(), type.get(), &ptr) < 0) fail("set attribute '" + name + "' of", obj_path);
}

void H5File::set_attr(const std::string& obj_path, const std::string& name, const std::string& value) {
  write_string_attr_raw(obj_path, name, value);
}

void H5File::set_attr(const std::string& obj_path, const std::string& name, const char* value) {
  write_string_attr_raw(obj_path, name, value == nullptr ? std::string() : std::string(value));
}

namespace {

// Writes one scalar attribute of memory type mem_type, stored as file_type.
template <typename T>
void write_scalar_attr(H5File& file, hid_t file_id, const std::string& obj_path, const std::string& name,
                       hid_t file_type, hid_t mem_type, const T& value) {
  Id obj = open_object(file_id, obj_path);
  if (!obj.ok()) {
    throw Error(fmt::format("cannot set attribute '{}': HDF5 file '{}' has no object '{}'", name, file.path(),
                            absolute(obj_path)));
  }
  if (H5Aexists(obj.get(), name.c_str()) > 0) H5Adelete(obj.get(), name.c_str());
  Id space(H5Screate(H5S_SCALAR), H5Sclose);
  Id attr(H5Acreate2(obj.get(), name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.ok() || H5Awrite(attr.get(), mem_type, &value) < 0) {
    throw IoError(fmt::format("cannot set attribute '{}' of '{}' in HDF5 file '{}' ({}); if the file is damaged, "
                              "delete it and re-run",
                              name, absolute(obj_path), file.path(), hdf5_error_detail()));
  }
}

}  // namespace

void H5File::set_attr(const std::string& obj_path, const std::string& name, int64_t value) {
  check_writable("set attribute '" + name + "' of", obj_path);
  write_scalar_attr(*this, file_id_, obj_path, name, H5T_STD_I64LE, H5T_NATIVE_INT64, value);
}

void H5File::set_attr(const std::string& obj_path, const std::string& name, int value) {
  set_attr(obj_path, name, static_cast<int64_t>(value));
}

void H5File::set_attr(const std::string& obj_path, const std::string& name, double value) {
  check_writable("set attribute '" + name + "' of", obj_path);
  write_scalar_attr(*this, file_id_, obj_path, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, value);
}

void H5File::set_attr(const std::string& obj_path, const std::string& name, bool value) {
  check_writable("set attribute '" + name + "' of", obj_path);
  Id type = bool_type();
  int8_t stored = value ? 1 : 0;
  write_scalar_attr(*this, file_id_, obj_path, name, type.get(), type.get(), stored);
}

bool H5File::has_attr(const std::string& obj_path, const std::string& name) const {
  Id obj = open_object(file_id_, obj_path);
  return obj.ok() && H5Aexists(obj.get(), name.c_str()) > 0;
}

std::vector<std::string> H5File::attr_names(const std::string& obj_path) const {
  Id obj = open_object(file_id_, obj_path);
  if (!obj.ok()) throw Error(fmt::format("HDF5 file '{}' has no object '{}'", path_, absolute(obj_path)));
  std::vector<std::string> names;
  hsize_t idx = 0;
  if (H5Aiterate2(obj.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr_name, &names) < 0) {
    fail("list attributes of", obj_path);
  }
  return names;
}

void H5File::remove_attr(const std::string& obj_path, const std::string& name) {
  check_writable("remove attribute '" + name + "' of", obj_path);
  Id obj = open_object(file_id_, obj_path);
  if (!obj.ok() || H5Aexists(obj.get(), name.c_str()) <= 0) return;
  if (H5Adelete(obj.get(), name.c_str()) < 0) fail("remove attribute '" + name + "' of", obj_path);
}

namespace {

// An open single-element attribute with its type.
struct OpenAttr {
  Id attr;
  Id type;
  Id space;
  H5T_class_t cls = H5T_NO_CLASS;
};

// Opens attribute `name` of the open object `obj` (which must have it).
OpenAttr open_attr_of(hid_t obj, const H5File& file, const std::string& obj_path, const std::string& name) {
  OpenAttr out;
  out.attr = Id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!out.attr.ok()) {
    throw IoError(fmt::format("cannot open attribute '{}' of '{}' in HDF5 file '{}' ({}); if the file is damaged, "
                              "delete it and re-run",
                              name, absolute(obj_path), file.path(), hdf5_error_detail()));
  }
  out.type = Id(H5Aget_type(out.attr.get()), H5Tclose);
  out.space = Id(H5Aget_space(out.attr.get()), H5Sclose);
  out.cls = H5Tget_class(out.type.get());
  if (H5Sget_simple_extent_npoints(out.space.get()) != 1) {
    throw Error(fmt::format("attribute '{}' of '{}' in HDF5 file '{}' holds {} values, expected one", name,
                            absolute(obj_path), file.path(), H5Sget_simple_extent_npoints(out.space.get())));
  }
  return out;
}

// The attribute, or nothing when the object or the attribute is absent.
std::optional<OpenAttr> open_attr(hid_t file_id, const H5File& file, const std::string& obj_path,
                                  const std::string& name) {
  Id obj = open_object(file_id, obj_path);
  if (!obj.ok() || H5Aexists(obj.get(), name.c_str()) <= 0) return std::nullopt;
  return open_attr_of(obj.get(), file, obj_path, name);
}

[[noreturn]] void wrong_attr_type(const H5File& file, const std::string& obj_path, const std::string& name,
                                  H5T_class_t cls, const char* wanted) {
  throw Error(fmt::format("attribute '{}' of '{}' in HDF5 file '{}' is {}, expected {}", name, absolute(obj_path),
                          file.path(), describe_class(cls), wanted));
}

void read_attr_raw(const OpenAttr& a, hid_t mem_type, void* buf, const H5File& file, const std::string& obj_path,
                   const std::string& name) {
  if (H5Aread(a.attr.get(), mem_type, buf) < 0) {
    throw IoError(fmt::format("cannot read attribute '{}' of '{}' in HDF5 file '{}' ({}); if the file is damaged, "
                              "delete it and re-run",
                              name, absolute(obj_path), file.path(), hdf5_error_detail()));
  }
}

std::string decode_string(const OpenAttr& a, const H5File& file, const std::string& obj_path,
                          const std::string& name) {
  if (a.cls != H5T_STRING) wrong_attr_type(file, obj_path, name, a.cls, "a string");
  if (H5Tis_variable_str(a.type.get()) > 0) {
    char* ptr = nullptr;
    read_attr_raw(a, a.type.get(), &ptr, file, obj_path, name);
    VlenReclaimer reclaim{a.type.get(), a.space.get(), &ptr};
    return std::string(ptr == nullptr ? "" : ptr);
  }
  // Fixed-length strings (written by other tools) are NUL- or space-padded.
  std::string buf(H5Tget_size(a.type.get()), '\0');
  read_attr_raw(a, a.type.get(), buf.data(), file, obj_path, name);
  buf.resize(std::strlen(buf.c_str()));
  if (H5Tget_strpad(a.type.get()) == H5T_STR_SPACEPAD) {
    while (!buf.empty() && buf.back() == ' ') buf.pop_back();
  }
  return buf;
}

double decode_double(const OpenAttr& a, const H5File& file, const std::string& obj_path, const std::string& name) {
  if (a.cls != H5T_FLOAT && a.cls != H5T_INTEGER) wrong_attr_type(file, obj_path, name, a.cls, "a number");
  double value = 0;
  read_attr_raw(a, H5T_NATIVE_DOUBLE, &value, file, obj_path, name);
  return value;
}

bool is_bool_enum(const OpenAttr& a) { return a.cls == H5T_ENUM && H5Tget_size(a.type.get()) == 1; }

int8_t read_bool_enum(const OpenAttr& a, const H5File& file, const std::string& obj_path, const std::string& name) {
  // HDF5 1.10 cannot convert enum to integer, so read in the stored enum type itself.
  int8_t value = 0;
  read_attr_raw(a, a.type.get(), &value, file, obj_path, name);
  return value;
}

int64_t decode_int(const OpenAttr& a, const H5File& file, const std::string& obj_path, const std::string& name) {
  // A bool written from Python (h5py's enum) reads as 0/1: flags such as `causal` are often set that way.
  if (is_bool_enum(a)) return read_bool_enum(a, file, obj_path, name) != 0 ? 1 : 0;
  if (a.cls == H5T_FLOAT) {
    const double value = decode_double(a, file, obj_path, name);
    // 2^63 itself does not fit: the cast of anything outside (-2^63, 2^63) is undefined
    if (!(std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 9223372036854775808.0)) {
      throw Error(fmt::format("attribute '{}' of '{}' in HDF5 file '{}' is {}, expected an integer", name,
                              absolute(obj_path), file.path(), value));
    }
    return static_cast<int64_t>(value);
  }
  if (a.cls != H5T_INTEGER) wrong_attr_type(file, obj_path, name, a.cls, "an integer");
  int64_t value = 0;
  read_attr_raw(a, H5T_NATIVE_INT64, &value, file, obj_path, name);
  return value;
}

bool decode_bool(const OpenAttr& a, const H5File& file, const std::string& obj_path, const std::string& name) {
  if (a.cls == H5T_INTEGER) return decode_int(a, file, obj_path, name) != 0;
  if (!is_bool_enum(a)) wrong_attr_type(file, obj_path, name, a.cls, "a bool");
  return read_bool_enum(a, file, obj_path, name) != 0;
}

}  // namespace

std::optional<std::string> H5File::attr_string(const std::string& obj_path, const std::string& name) const {
  auto a = open_attr(file_id_, *this, obj_path, name);
  if (!a) return std::nullopt;
  return decode_string(*a, *this, obj_path, name);
}

std::optional<double> H5File::attr_double(const std::string& obj_path, const std::string& name) const {
  auto a = open_attr(file_id_, *this, obj_path, name);
  if (!a) return std::nullopt;
  return decode_double(*a, *this, obj_path, name);
}

std::optional<int64_t> H5File::attr_int(const std::string& obj_path, const std::string& name) const {
  auto a = open_attr(file_id_, *this, obj_path, name);
  if (!a) return std::nullopt;
  return decode_int(*a, *this, obj_path, name);
}

std::optional<bool> H5File::attr_bool(const std::string& obj_path, const std::string& name) const {
  auto a = open_attr(file_id_, *this, obj_path, name);
  if (!a) return std::nullopt;
  return decode_bool(*a, *this, obj_path, name);
}

std::map<std::string, H5AttrValue> H5File::read_attrs(const std::string& obj_path) const {
  Id obj = open_object(file_id_, obj_path);
  if (!obj.ok()) throw Error(fmt::format("HDF5 file '{}' has no object '{}'", path_, absolute(obj_path)));
  std::vector<std::string> names;
  hsize_t idx = 0;
  if (H5Aiterate2(obj.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr_name, &names) < 0) {
    fail("list attributes of", obj_path);
  }
  std::map<std::string, H5AttrValue> out;
  for (const auto& name : names) {
    OpenAttr a;
    a.attr = Id(H5Aopen(obj.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
    if (!a.attr.ok()) fail("open attribute '" + name + "' of", obj_path);
    a.space = Id(H5Aget_space(a.attr.get()), H5Sclose);
    if (H5Sget_simple_extent_npoints(a.space.get()) != 1) continue;
    a.type = Id(H5Aget_type(a.attr.get()), H5Tclose);
    a.cls = H5Tget_class(a.type.get());
    switch (a.cls) {
      case H5T_STRING: out.emplace(name, decode_string(a, *this, obj_path, name)); break;
      case H5T_INTEGER: out.emplace(name, decode_int(a, *this, obj_path, name)); break;
      case H5T_FLOAT: out.emplace(name, decode_double(a, *this, obj_path, name)); break;
      case H5T_ENUM:
        if (is_bool_enum(a)) out.emplace(name, decode_bool(a, *this, obj_path, name));
        break;
      default: break;
    }
  }
  return out;
}

// ---------------------------------------------------------------- datasets

namespace {

// Creates dataset `path` (replacing any object already there), parents included.
Id create_dataset(H5File& file, hid_t file_id, const std::string& path, hid_t file_type, hid_t space) {
  if (file.exists(path)) file.remove(path);
  Id lcpl = link_create_plist();
  return Id(H5Dcreate2(file_id, absolute(path).c_str(), file_type, space, lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
            H5Dclose);
}

Id make_simple_space(const std::string& file_path, const std::string& path, size_t count,
                     const std::vector<int64_t>& dims) {
  std::vector<hsize_t> extent;
  if (dims.empty()) {
    extent.push_back(count);
  } else {
    size_t product = 1;
    for (int64_t d : dims) {
      if (d < 0) {
        throw Error(fmt::format("cannot write '{}' in HDF5 file '{}': negative dimension {} in shape [{}]",
                                absolute(path), file_path, d, fmt::join(dims, ", ")));
      }
      product *= static_cast<size_t>(d);
      extent.push_back(static_cast<hsize_t>(d));
    }
    if (product != count) {
      throw Error(fmt::format("cannot write '{}' in HDF5 file '{}': shape [{}] holds {} values but {} were given",
                              absolute(path), file_path, fmt::join(dims, ", "), product, count));
    }
  }
  return Id(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), H5Sclose);
}

}  // namespace

void H5File::write_scalar(const std::string& path, double value) {
  check_writable("write", path);
  Id space(H5Screate(H5S_SCALAR), H5Sclose);
  Id dset = create_dataset(*this, file_id_, path, H5T_IEEE_F64LE, space.get());
  if (!dset.ok() || H5Dwrite(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) < 0) {
    fail("write", path);
  }
}

double H5File::read_scalar(const std::string& path) const {
  H5Array<double> array = read_array_f64(path);
  if (array.data.size() != 1) {
    throw Error(fmt::format("dataset '{}' in HDF5 file '{}' holds {} values, expected a scalar", absolute(path),
                            path_, array.data.size()));
  }
  return array.data[0];
}

void H5File::write_array(const std::string& path, const std::vector<double>& data, const std::vector<int64_t>& dims) {
  check_writable("write", path);
  Id space = make_simple_space(path_, path, data.size(), dims);
  Id dset = create_dataset(*this, file_id_, path, H5T_IEEE_F64LE, space.get());
  if (!dset.ok()) fail("create dataset", path);
  if (!data.empty() && H5Dwrite(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0) {
    fail("write", path);
  }
}

void H5File::write_array(const std::string& path, const std::vector<float>& data, const std::vector<int64_t>& dims) {
  check_writable("write", path);
  Id space = make_simple_space(path_, path, data.size(), dims);
  Id dset = create_dataset(*this, file_id_, path, H5T_IEEE_F32LE, space.get());
  if (!dset.ok()) fail("create dataset", path);
  if (!data.empty() && H5Dwrite(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0) {
    fail("write", path);
  }
}

namespace {

// A dataset's header can claim any extent: a chunked dataset whose chunks were never written costs
// nothing on disk, yet reading it would allocate the whole extent. So an extent whose element count
// overflows, or that needs more than 1024 times the bytes the file stores for it (beyond a first
// MiB; no compression that we or h5py use comes near that), is refused before anything is allocated.
size_t checked_element_count(hid_t dset, const std::vector<hsize_t>& extent, size_t element_bytes,
                             const std::string& file, const std::string& path) {
  constexpr uint64_t kMaxElements = uint64_t{1} << 40;
  uint64_t count = 1;
  for (hsize_t d : extent) count = (d != 0 && count > kMaxElements / d) ? kMaxElements + 1 : count * d;
  const uint64_t stored = H5Dget_storage_size(dset);
  if (count > kMaxElements || count * element_bytes > 1024 * stored + (uint64_t{1} << 20))
    throw IoError(fmt::format("dataset '{}' in HDF5 file '{}' claims {} elements but the file stores only {} bytes "
                              "for it: the file is damaged or was not written by smyrf; delete it and re-run",
                              absolute(path), file, count > kMaxElements ? "over 2^40" : std::to_string(count), stored));
  return static_cast<size_t>(count);
}

template <typename T>
H5Array<T> read_numeric(const H5File& file, hid_t file_id, const std::string& path, hid_t mem_type) {
  Id dset(H5Dopen2(file_id, absolute(path).c_str(), H5P_DEFAULT), H5Dclose);
  if (!dset.ok()) {
    H5Eclear2(H5E_DEFAULT);
    throw Error(fmt::format("HDF5 file '{}' has no dataset '{}'", file.path(), absolute(path)));
  }
  Id type(H5Dget_type(dset.get()), H5Tclose);
  H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
    throw Error(fmt::format("dataset '{}' in HDF5 file '{}' is {}, expected numbers", absolute(path), file.path(),
                            describe_class(cls)));
  }
  Id space(H5Dget_space(dset.get()), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> extent(static_cast<size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.get(), extent.data(), nullptr);
  const size_t count = checked_element_count(dset.get(), extent, sizeof(T), file.path(), path);
  H5Array<T> out;
  out.dims.assign(extent.begin(), extent.end());
  out.data.resize(count);
  if (count > 0 && H5Dread(dset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data.data()) < 0) {
    throw IoError(fmt::format("cannot read dataset '{}' in HDF5 file '{}' ({}); if the file is damaged, delete it "
                              "and re-run",
                              absolute(path), file.path(), hdf5_error_detail()));
  }
  return out;
}

}  // namespace

H5Array<double> H5File::read_array_f64(const std::string& path) const {
  return read_numeric<double>(*this, file_id_, path, H5T_NATIVE_DOUBLE);
}

H5Array<float> H5File::read_array_f32(const std::string& path) const {
  return read_numeric<float>(*this, file_id_, path, H5T_NATIVE_FLOAT);
}

int H5File::stored_element_bits(const std::string& path) const {
  if (!is_dataset(path)) throw Error(fmt::format("HDF5 file '{}' has no dataset '{}'", path_, absolute(path)));
  Id dset(H5Dopen2(file_id_, absolute(path).c_str(), H5P_DEFAULT), H5Dclose);
  Id type(H5Dget_type(dset.get()), H5Tclose);
  return static_cast<int>(H5Tget_size(type.get()) * 8);
}

std::vector<int64_t> H5File::dataset_dims(const std::string& path) const {
  if (!is_dataset(path)) throw Error(fmt::format("HDF5 file '{}' has no dataset '{}'", path_, absolute(path)));
  Id dset(H5Dopen2(file_id_, absolute(path).c_str(), H5P_DEFAULT), H5Dclose);
  Id space(H5Dget_space(dset.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> extent(static_cast<size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.get(), extent.data(), nullptr);
  return std::vector<int64_t>(extent.begin(), extent.end());
}

H5Array<uint8_t> H5File::read_array_u8(const std::string& path, int64_t first_row, int64_t row_count) const {
  const std::vector<int64_t> dims = dataset_dims(path);
  Id dset(H5Dopen2(file_id_, absolute(path).c_str(), H5P_DEFAULT), H5Dclose);
  Id type(H5Dget_type(dset.get()), H5Tclose);
  // HDF5 would convert (and clip) any other type into uint8 without a word: refuse instead.
  if (H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_size(type.get()) != 1 || H5Tget_sign(type.get()) != H5T_SGN_NONE) {
    throw Error(fmt::format("dataset '{}' in HDF5 file '{}' is {} of {} byte(s), expected 8-bit unsigned integers",
                            absolute(path), path_, describe_class(H5Tget_class(type.get())), H5Tget_size(type.get())));
  }
  if (dims.empty()) {
    throw Error(fmt::format("dataset '{}' in HDF5 file '{}' is a scalar; rows need at least one dimension",
                            absolute(path), path_));
  }
  const int64_t rows = dims[0];
  if (row_count < 0) row_count = rows - first_row;
  if (first_row < 0 || row_count < 0 || first_row + row_count > rows) {
    throw Error(fmt::format("cannot read rows [{}, {}) of dataset '{}' in HDF5 file '{}': it has {} rows", first_row,
                            first_row + row_count, absolute(path), path_, rows));
  }
  checked_element_count(dset.get(), std::vector<hsize_t>(dims.begin(), dims.end()), 1, path_, path);
  H5Array<uint8_t> out;
  out.dims = dims;
  out.dims[0] = row_count;
  size_t count = 1;
  for (int64_t d : out.dims) count *= static_cast<size_t>(d);
  out.data.resize(count);
  if (count == 0) return out;
  std::vector<hsize_t> start(dims.size(), 0), extent(out.dims.begin(), out.dims.end());
  start[0] = static_cast<hsize_t>(first_row);
  Id file_space(H5Dget_space(dset.get()), H5Sclose);
  Id mem_space(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), H5Sclose);
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr) < 0 ||
      H5Dread(dset.get(), H5T_NATIVE_UINT8, mem_space.get(), file_space.get(), H5P_DEFAULT, out.data.data()) < 0) {
    throw IoError(fmt::format("cannot read dataset '{}' in HDF5 file '{}' ({}); if the file is damaged, delete it "
                              "and re-run",
                              absolute(path), path_, hdf5_error_detail()));
  }
  return out;
}

// ---------------------------------------------------------------- compound tables

void H5File::write_table(const std::string& path, const std::vector<H5Column>& columns) {
  check_writable("write", path);
  const size_t rows = columns.empty() ? 0 : columns.front().size();
  std::set<std::string> seen;
  for (const auto& column : columns) {
    if (column.name.empty() || !seen.insert(column.name).second) {
      throw Error(fmt::format("cannot write table '{}' in HDF5 file '{}': column name '{}' is empty or repeated",
                              absolute(path), path_, column.name));
    }
    if (column.size() != rows) {
      throw Error(fmt::format("cannot write table '{}' in HDF5 file '{}': column '{}' has {} rows, expected {}",
                              absolute(path), path_, column.name, column.size(), rows));
    }
  }
  if (columns.empty()) {
    throw Error(fmt::format("cannot write table '{}' in HDF5 file '{}': no columns", absolute(path), path_));
  }
  // Every member is 8 bytes (a double or a char*), so the record needs no padding.
  constexpr size_t kMemberBytes = 8;
  static_assert(sizeof(double) == kMemberBytes && sizeof(const char*) == kMemberBytes);
  const size_t record_bytes = kMemberBytes * columns.size();
  Id string_type = vlen_string_type();
  Id record(H5Tcreate(H5T_COMPOUND, record_bytes), H5Tclose);
  for (size_t c = 0; c < columns.size(); ++c) {
    hid_t member = columns[c].is_string ? string_type.get() : H5T_NATIVE_DOUBLE;
    if (H5Tinsert(record.get(), columns[c].name.c_str(), c * kMemberBytes, member) < 0) {
      fail("define column '" + columns[c].name + "' of table", path);
    }
  }
  std::vector<unsigned char> buf(rows * record_bytes);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < columns.size(); ++c) {
      unsigned char* slot = buf.data() + r * record_bytes + c * kMemberBytes;
      if (columns[c].is_string) {
        const char* ptr = columns[c].strings[r].c_str();
        std::memcpy(slot, &ptr, kMemberBytes);
      } else {
        std::memcpy(slot, &columns[c].numbers[r], kMemberBytes);
      }
    }
  }
  hsize_t extent = rows;
  Id space(H5Screate_simple(1, &extent, nullptr), H5Sclose);
  Id dset = create_dataset(*this, file_id_, path, record.get(), space.get());
  if (!dset.ok()) fail("create table", path);
  if (rows > 0 && H5Dwrite(dset.get(), record.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0) {
    fail("write table", path);
  }
}

std::vector<H5Column> H5File::read_table(const std::string& path) const {
  if (!is_dataset(path)) throw Error(fmt::format("HDF5 file '{}' has no dataset '{}'", path_, absolute(path)));
  Id dset(H5Dopen2(file_id_, absolute(path).c_str(), H5P_DEFAULT), H5Dclose);
  Id file_type(H5Dget_type(dset.get()), H5Tclose);
  if (H5Tget_class(file_type.get()) != H5T_COMPOUND) {
    throw Error(fmt::format("dataset '{}' in HDF5 file '{}' is not a compound table", absolute(path), path_));
  }
  const int members = H5Tget_nmembers(file_type.get());
  constexpr size_t kMemberBytes = 8;
  std::vector<H5Column> columns(static_cast<size_t>(members));
  Id string_type = vlen_string_type();
  Id record(H5Tcreate(H5T_COMPOUND, kMemberBytes * std::max(members, 1)), H5Tclose);
  for (int m = 0; m < members; ++m) {
    char* raw_name = H5Tget_member_name(file_type.get(), static_cast<unsigned>(m));
    columns[m].name = raw_name;
    H5free_memory(raw_name);
    H5T_class_t cls = H5Tget_member_class(file_type.get(), static_cast<unsigned>(m));
    Id member_type(H5Tget_member_type(file_type.get(), static_cast<unsigned>(m)), H5Tclose);
    if (cls == H5T_STRING && H5Tis_variable_str(member_type.get()) > 0) {
      columns[m].is_string = true;
    } else if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
      throw Error(fmt::format("column '{}' of table '{}' in HDF5 file '{}' is {}; only numbers and "
                              "variable-length strings are supported",
                              columns[m].name, absolute(path), path_, describe_class(cls)));
    }
    H5Tinsert(record.get(), columns[m].name.c_str(), static_cast<size_t>(m) * kMemberBytes,
              columns[m].is_string ? string_type.get() : H5T_NATIVE_DOUBLE);
  }
  Id space(H5Dget_space(dset.get()), H5Sclose);
  const size_t rows = checked_element_count(dset.get(), {static_cast<hsize_t>(H5Sget_simple_extent_npoints(space.get()))},
                                            std::max<size_t>(H5Tget_size(file_type.get()), 1), path_, path);
  const size_t record_bytes = kMemberBytes * static_cast<size_t>(members);
  std::vector<unsigned char> buf(rows * record_bytes);
  if (rows > 0 && members > 0) {
    if (H5Dread(dset.get(), record.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0) fail("read table", path);
    VlenReclaimer reclaim{record.get(), space.get(), buf.data()};
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < columns.size(); ++c) {
        const unsigned char* slot = buf.data() + r * record_bytes + c * kMemberBytes;
        if (columns[c].is_string) {
          const char* ptr = nullptr;
          std::memcpy(&ptr, slot, kMemberBytes);
          columns[c].strings.emplace_back(ptr == nullptr ? "" : ptr);
        } else {
          double value = 0;
          std::memcpy(&value, slot, kMemberBytes);
          columns[c].numbers.push_back(value);
        }
      }
    }
  }
  return columns;
}

}  // namespace smyrf
