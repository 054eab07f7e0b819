# frozen_string_literal: true

# Bad-input runner, Ruby edition (our binding): runs one case of
# bad_inputs.tsv. Same arguments and output as bad_runner.c:
#
#   ruby -I <build>/bindings/ruby/lib bad_runner.rb <table.tsv> <case id> <hex path> <warm-up path>
#
# The binding's exceptions are mapped back to the core's error names in
# name_of, the one place that knows how Ruby spells them.

require "filelock"

REPEAT = 3

# The core's errno -> code mapping (core/src/errors.c), for SystemCallError.
ERRNO_NAMES = {
  "EPERM" => "EACCES", "EDQUOT" => "ENOSPC", "ENOSYS" => "ENOTSUP", "EOPNOTSUPP" => "ENOTSUP"
}.freeze
KNOWN = %w[EACCES EISDIR EROFS ENAMETOOLONG ENOENT ENOTDIR ELOOP ENOSPC ENOMEM EIO EINTR].freeze

def name_of(exc)
  case exc
  when Filelock::Timeout then "ETIMEOUT"
  when Filelock::DeadlockError then "EDEADLK"
  when Filelock::Error then exc.code.to_s
  when SystemCallError
    name = exc.class.name.sub("Errno::", "")
    ERRNO_NAMES.fetch(name) { KNOWN.include?(name) ? name : "EOS" }
  when ArgumentError then "EINVAL"
  else exc.class.name
  end
end

def num(str)
  { "nan" => Float::NAN, "inf" => Float::INFINITY, "-inf" => -Float::INFINITY }.fetch(str) { Float(str) }
end

def parse(tok)
  name, opts = tok.split(":", 2)
  [name, (opts || "").split(",").to_h { |o| o.split("=", 2) }]
end

class AssertFailed < StandardError; end

class Case
  def initialize(path, kind)
    @path = path
    @cls = kind == "soft" ? Filelock::SoftFileLock : Filelock::FileLock
    @h = {}
  end

  def step(tok)
    which = :a
    if tok.start_with?("b.")
      which = :b
      tok = tok[2..]
    end
    name, kv = parse(tok)
    case name
    when "new"
      args = {}
      args[:timeout] = num(kv["timeout"]) if kv.key?("timeout")
      args[:poll_interval] = num(kv["poll"]) if kv.key?("poll")
      args[:mode] = Integer(kv["mode"]) if kv.key?("mode")
      abort "soft_fallback is not exposed by the Ruby binding" if kv.key?("fallback")
      @h[which] = @cls.new(@path, **args)
    when "acq"
      @h[which].acquire(timeout: num(kv.fetch("timeout", "1")),
                        poll_interval: num(kv.fetch("poll", "0.05")),
                        blocking: kv.fetch("blocking", "1") == "1")
    when "rel" then @h[which].release
    when "relf" then @h[which].release(force: true)
    when "relthread"
      lock = @h[:a]
      Thread.new { lock.release }.join(20)
    when "free"
      # The binding frees a handle when it is garbage-collected; dispose is
      # that same free, done now (GC.start alone is not deterministic).
      @h.delete(which).__send__(:dispose)
    when "assert"
      key, want = kv.first
      lock = @h[:a]
      got = case key
            when "locked" then lock.locked? ? "1" : "0"
            when "counter" then lock.lock_counter.to_s
            when "kind" then lock.kind.to_s
            end
      raise AssertFailed, "assertion #{tok} failed (got #{got})" unless got == want
    else
      abort "bad_runner.rb: unknown step #{tok}"
    end
  end

  def cleanup
    @h.each_value do |lock|
      lock.release(force: true)
      lock.__send__(:dispose)
    end
    @h.clear
  end
end

def run(path, kind, steps, msgs)
  c = Case.new(path, kind)
  result = "OK"
  steps.split.each_with_index do |tok, i|
    c.step(tok)
  rescue AssertFailed => e
    msgs << e.message
    result = "ASSERT@#{i}"
    break
  rescue StandardError => e
    msgs << "#{e.class}: #{e.message}"
    result = "#{name_of(e)}@#{i}"
    break
  end
  c.cleanup
  result
end

def count_fds
  Dir.children("/proc/self/fd").size - 1
end

table, case_id, hexpath, warm = ARGV
row = File.foreach(table, chomp: true).map { |l| l.split("\t") }
          .find { |c| !c[0].start_with?("#") && c.size >= 6 && c[0] == case_id }
abort "bad_runner.rb: no case #{case_id}" unless row
path = [hexpath].pack("H*").force_encoding(Encoding::BINARY)

# Warm-up: a timed-out wait, kernel and soft, leaves one inotify instance in
# the core's process-wide pool; it is not a leak.
[[Filelock::FileLock, ""], [Filelock::SoftFileLock, ".soft"]].each do |cls, suffix|
  a = cls.new(warm + suffix)
  b = cls.new(warm + suffix)
  a.acquire(timeout: 0)
  begin
    b.acquire(timeout: 0.03)
  rescue Filelock::Timeout
    nil
  end
  a.release
  a.__send__(:dispose)
  b.__send__(:dispose)
end
GC.start
fd0 = count_fds
puts "FD0 #{fd0}"
msgs = []
REPEAT.times do |r|
  res = run(path, row[1], row[4], msgs)
  puts "RUN #{r} #{res} #{count_fds}"
end
puts "MSG #{msgs[0].tr("\n", " ")}" unless msgs.empty?
