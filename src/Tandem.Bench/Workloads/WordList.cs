namespace Tandem.Bench.Workloads;

/// <summary>
/// Short, common lower-case English words. Written with a leading space, each is a single token in the byte-level BPE
/// vocabularies of GPT-2, Llama 3 and Qwen, and nearly always in SentencePiece vocabularies, so a prompt of N words is
/// close to N tokens (the chat template adds a few more). Use --tokens-per-word to calibrate other tokenizers.
/// </summary>
internal static class WordList
{
    public static readonly string[] Words =
    [
        "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
        "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were", "their",
        "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no",
        "she", "other", "its", "may", "these", "what", "them", "than", "some", "him", "time", "into", "only", "do", "out", "could",
        "new", "about", "two", "also", "first", "then", "any", "like", "my", "now", "over", "such", "our", "man", "me", "even",
        "most", "made", "after", "many", "must", "well", "back", "through", "years", "much", "where", "your", "way", "down", "should", "because",
        "each", "just", "those", "people", "how", "too", "little", "state", "good", "very", "make", "world", "still", "own", "see", "men",
        "work", "long", "get", "here", "between", "both", "life", "being", "under", "never", "day", "same", "another", "know", "while", "last",
        "might", "us", "great", "old", "year", "off", "come", "since", "against", "go", "came", "right", "used", "take", "three", "small",
        "place", "again", "house", "few", "part", "found", "hand", "high", "every", "water", "light", "early", "city", "school", "power", "night",
        "war", "end", "home", "point", "body", "game", "word", "side", "line", "music", "book", "land", "river", "field", "road", "story",
        "paper", "group", "market", "money", "table", "child", "level", "order", "heart", "voice", "church", "idea", "color", "food", "answer", "letter",
        "north", "south", "fire", "rain", "wind", "tree", "stone", "glass", "horse", "bird", "ship", "plant", "green", "blue", "black", "white",
        "red", "open", "short", "large", "young", "free", "clear", "full", "late", "hard", "real", "best", "better", "true", "whole", "close",
        "round", "number", "sound", "picture", "moment", "course", "change", "family", "system", "question", "friend", "reason", "window", "garden", "animal", "summer",
        "winter", "morning", "island", "mountain", "village", "machine", "doctor", "teacher", "student", "history", "science", "nature", "ocean", "forest", "bridge", "engine",
    ];
}
