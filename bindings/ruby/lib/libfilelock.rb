# frozen_string_literal: true

# `require "libfilelock"`: the same as `require "filelock"`, under the gem's
# own name, for programs that also have the unrelated `filelock` gem
# installed (it ships a lib/filelock.rb too).
require_relative "filelock"
