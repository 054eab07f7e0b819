# Gem of the Ruby binding. It is packed from a staged directory (see
# build_gem.rb) holding lib/filelock.rb, the SWIG-generated wrapper and the
# C core, so that `gem install` needs a C compiler and Ruby's headers, but
# neither SWIG nor CMake nor a network.

header = File.join(__dir__, "ext", "filelock_ext", "filelock.h")
version =
  if File.exist?(header)
    text = File.read(header)
    %w[MAJOR MINOR PATCH].map { |p| text[/#define FL_VERSION_#{p} (\d+)/, 1] || "0" }.join(".")
  else
    "0.0.0"
  end

Gem::Specification.new do |s|
  s.name = "libfilelock"
  s.version = version
  s.summary = "A platform-independent file lock (flock or soft marker) shared with C, Python and Lua"
  s.description = <<~DESC
    Ruby binding of libfilelock: Filelock::FileLock and Filelock::SoftFileLock with blocks,
    timeouts, waits that release the GVL and can be interrupted, and Ruby's own exceptions.
  DESC
  s.authors = ["filelock developers"]
  s.required_ruby_version = ">= 2.7"
  s.files = Dir.chdir(__dir__) do
    Dir["lib/**/*.rb"] + Dir["ext/filelock_ext/*.{c,h,rb}"]
  end
  s.require_paths = ["lib"]
  s.extensions = ["ext/filelock_ext/extconf.rb"]
end
