module Util
  # Greets.
  class Greeter
    LIMIT = 3
    def hello(name)
      puts name
    end
    def self.make; end
  end
end
def top_level; end
